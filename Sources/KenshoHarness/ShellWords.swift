import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A command given as one string (`--impl "node 'my adapters/a.mjs' --fast"`), read as a POSIX
/// shell reads a simple command: words split on blanks, `'…'` taken literally, `"…"` with `\`
/// escaping only `$`, `` ` ``, `"`, `\` and a line break, `\` outside quotes escaping any
/// character, and a leading unquoted `~` or `~/` the home folder. Nothing else is expanded, and
/// no shell runs the command: an unquoted `|`, `&`, `;`, `<`, `>`, `(`, `)`, `$` or `` ` ``
/// is refused (the command would not do what it says), with a hint to quote it or use `sh -c`.
///
/// This is the one place where an implementation's command is split into words: the adapter
/// processes, the defect catalogue's `--list-defects` and the command line's checks all use it.
public enum ShellWords {
  public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
  }

  /// The words of `text`, or what is wrong with it (an unterminated quote, a shell operator,
  /// no word at all).
  public static func split(_ text: String) throws(Problem) -> [String] {
    var words: [String] = []
    var word = ""
    var inWord = false
    var chars = Array(text.unicodeScalars)[...]
    /// Whether the word so far began with an unquoted `~` that may still be expanded.
    var tilde = false
    func finish() {
      if tilde && (word == "~" || word.hasPrefix("~/")) {
        word = homeFolder + word.dropFirst()
      }
      words.append(word)
      word = ""
      inWord = false
      tilde = false
    }
    while let c = chars.popFirst() {
      switch c {
      case " ", "\t", "\n":
        if inWord { finish() }
      case "'":
        inWord = true
        guard let close = chars.firstIndex(of: "'") else {
          throw Problem(description: "a single quote (') is not closed in \(shown(text))")
        }
        word.unicodeScalars.append(contentsOf: chars[chars.startIndex..<close])
        chars = chars[(close + 1)...]
      case "\"":
        inWord = true
        var closed = false
        while let d = chars.popFirst() {
          if d == "\"" {
            closed = true
            break
          }
          if d == "\\", let next = chars.first, "$`\"\\\n".unicodeScalars.contains(next) {
            chars.removeFirst()
            if next != "\n" { word.unicodeScalars.append(next) }
            continue
          }
          word.unicodeScalars.append(d)
        }
        guard closed else { throw Problem(description: "a double quote (\") is not closed in \(shown(text))") }
      case "\\":
        guard let next = chars.popFirst() else {
          throw Problem(description: "\(shown(text)) ends with a lone backslash")
        }
        if next == "\n" { continue }  // a line continuation
        inWord = true
        word.unicodeScalars.append(next)
      case "|", "&", ";", "<", ">", "(", ")", "$", "`":
        throw Problem(
          description:
            "\(shown(text)) holds an unquoted \(c), which only a shell understands; the command is run without one: "
            + "quote it, or write sh -c '…' or a script")
      default:
        if !inWord && c == "~" { tilde = true }
        inWord = true
        word.unicodeScalars.append(c)
      }
    }
    if inWord { finish() }
    guard !words.isEmpty else { throw Problem(description: "the command is empty") }
    return words
  }

  /// `word` quoted so that ``split(_:)`` (and a shell) reads it back as one word.
  public static func quote(_ word: String) -> String {
    let plain =
      !word.isEmpty
      && word.unicodeScalars.allSatisfy { c in
        (c.properties.isAlphabetic || ("0"..."9").contains(c) || "-_./:=+,@%".unicodeScalars.contains(c))
          && c.value < 0x80
      }
    if plain { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }

  /// Words joined into one command that ``split(_:)`` reads back as the same words.
  public static func join(_ words: [String]) -> String {
    words.map(quote).joined(separator: " ")
  }

  /// Where `program` (a command's first word) is: itself when it holds a `/`, else the first
  /// executable file of that name in `PATH`; or why it cannot be run.
  public static func locate(_ program: String, path searchPath: String? = nil) -> Result<String, Problem> {
    let path = searchPath ?? ProcessInfo.processInfo.environment["PATH"]
    func executable(_ file: String) -> Bool {
      var isDirectory: ObjCBool = false
      return FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && !isDirectory.boolValue
        && access(file, X_OK) == 0
    }
    if program.contains("/") {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: program, isDirectory: &isDirectory) else {
        return .failure(Problem(description: "\(shown(program)): no such file"))
      }
      guard !isDirectory.boolValue else { return .failure(Problem(description: "\(shown(program)) is a folder")) }
      guard access(program, X_OK) == 0 else {
        return .failure(Problem(description: "\(shown(program)) is not executable (chmod +x, or name its interpreter)"))
      }
      return .success(program)
    }
    // An empty PATH entry means the current folder, as for a shell.
    let folders = (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false)
    for folder in folders {
      let file = (folder.isEmpty ? "." : String(folder)) + "/" + program
      if executable(file) { return .success(file) }
    }
    return .failure(Problem(description: "\(shown(program)): no such program in PATH"))
  }

  static var homeFolder: String {
    ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
  }

  /// `text` in quotes, for messages.
  static func shown(_ text: String) -> String { "\"\(text)\"" }
}
