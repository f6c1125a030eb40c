import Foundation
import KenshoHarness
import KenshoProtocol
import KenshoReport
import KenshoScenario
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Input checked before anything runs: paths, misspelled commands, the implementation's
/// command, and the files of an earlier run in `--out`.
enum Inputs {
  /// The subcommands, for suggestions.
  static let commands = ["run", "list", "validate", "schema", "matrix", "catalogue"]

  /// Exit 2 naming every path that does not exist. A missing path that looks like a word
  /// rather than a file (no `/`, no `.json`) may be a misspelled command: it is said so, with
  /// the closest command when one is close.
  static func checkPathsExist(_ paths: [String]) throws {
    var problems: [String] = []
    for path in paths where !FileManager.default.fileExists(atPath: path) {
      let word = !path.contains("/") && !path.hasSuffix(".json") && !path.isEmpty
      if word, let suggestion = suggestion(for: path, among: commands) {
        problems.append(
          "\"\(SafeText.escape(path))\" is neither a command nor a scenario file or folder; did you mean \"\(suggestion)\"?"
        )
      } else if word && path == CommandLine.arguments.dropFirst().first {
        problems.append(
          "\"\(SafeText.escape(path))\" is neither a command nor a scenario file or folder; the commands are "
            + commands.joined(separator: ", ") + " (kensho-bench --help)")
      } else {
        problems.append("\(SafeText.escape(path)): no such scenario file or folder")
      }
    }
    guard problems.isEmpty else {
      for p in problems { printError("error: \(p)") }
      throw Exit.badInput
    }
  }

  /// The candidate closest to `word` by edit distance, when close enough to be a typo: at most
  /// one edit for short words, a third of the word's length for longer ones; or a candidate
  /// `word` begins (at least 2 letters).
  static func suggestion(for word: String, among candidates: [String]) -> String? {
    let lower = word.lowercased()
    if lower.count >= 2, let prefixed = candidates.first(where: { $0.hasPrefix(lower) }) { return prefixed }
    let scored = candidates.map { ($0, editDistance(lower, $0)) }.min { $0.1 < $1.1 }
    guard let (best, distance) = scored, distance <= max(1, lower.count / 3) else { return nil }
    return best
  }

  /// Levenshtein distance, with a transposition counted as one edit (optimal string alignment).
  static func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars)
    let y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
    for i in 0...x.count { d[i][0] = i }
    for j in 0...y.count { d[0][j] = j }
    for i in 1...x.count {
      for j in 1...y.count {
        let cost = x[i - 1] == y[j - 1] ? 0 : 1
        d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
        if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
      }
    }
    return d[x.count][y.count]
  }

  /// Checks `--impl` before a run: its quoting, its program, and the adapter handshake within
  /// `deadline`. Returns the implementation's name and version, or exits 2 with one message.
  static func checkImplementation(_ command: String, deadline: Double) throws -> String {
    switch ScenarioRunner.checkAdapter(command, deadline: Nanos.duration(seconds: deadline)) {
    case .success(let described): return described
    case .failure(let problem):
      // The problem's lines were composed here and its quotes escaped one by one.
      printError(
        "error: --impl \(SafeText.escape(ShellWords.quote(command))): "
          + SafeText.escape(problem.description, keepingNewlines: true))
      throw Exit.badInput
    }
  }

  /// The files `run` writes into its `--out` folder: the reports, the adapter's log, the
  /// `.hgrm` histograms, heap profiles and the temporary files of an interrupted write.
  static let reportNames = ["kensho-report.json", "kensho-report.html", "kensho-junit.xml", "adapter-stderr.log"]

  /// Whether `name`, in `--out` (or, with `inHgrm`, in its `hgrm` folder), is a file that `run`
  /// writes.
  static func isOurs(_ name: String, inHgrm: Bool) -> Bool {
    if inHgrm { return name.hasSuffix(".hgrm") || isTemporary(name, of: ".hgrm") }
    if reportNames.contains(name) { return true }
    if name.hasSuffix(".heap") && name.dropLast(5).allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    {
      return true
    }
    return reportNames.contains { isTemporary(name, of: $0) }
  }

  /// A temporary file of ``AtomicFile`` for `target` (an exact name, or a suffix when it begins
  /// with a dot): `.<target>.<UUID>.tmp`.
  static func isTemporary(_ name: String, of target: String) -> Bool {
    guard name.hasPrefix("."), name.hasSuffix(".tmp") else { return false }
    let middle = name.dropFirst().dropLast(4)
    guard let dot = middle.lastIndex(of: ".") else { return false }
    let file = middle[..<dot]
    let uuid = middle[middle.index(after: dot)...]
    guard UUID(uuidString: String(uuid)) != nil else { return false }
    return target.hasPrefix(".") ? file.hasSuffix(target) : file == target
  }

  /// Why the reports could not be written to `folder`, found before anything runs (a run of
  /// minutes whose reports then cannot be written is a run lost): nil when the folder exists
  /// or can be made, a file can be written in it, and no report's name is taken by a folder.
  static func unwritable(_ folder: URL) -> String? {
    let fm = FileManager.default
    do {
      try fm.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
      return "it cannot be made a folder (\(error.localizedDescription))"
    }
    let probe = folder.appendingPathComponent(".kensho-write-check-\(UUID().uuidString)")
    guard fm.createFile(atPath: probe.path, contents: Data()) else { return "no file can be written in it" }
    try? fm.removeItem(at: probe)
    for name in reportNames {
      var isFolder: ObjCBool = false
      if fm.fileExists(atPath: folder.appendingPathComponent(name).path, isDirectory: &isFolder), isFolder.boolValue {
        return "\(name) in it is a folder"
      }
    }
    return nil
  }

  /// Removes from `folder` the files an earlier run wrote there (``isOurs(_:inHgrm:)``), and
  /// the `hgrm` folder when that leaves it empty; nothing else. Returns the paths removed.
  @discardableResult
  static func clearEarlierRun(in folder: URL) throws -> [String] {
    let fm = FileManager.default
    var removed: [String] = []
    guard let entries = try? fm.contentsOfDirectory(atPath: folder.path) else { return [] }
    func regularOrLink(_ url: URL) -> Bool {
      let type = (try? fm.attributesOfItem(atPath: url.path))?[.type] as? FileAttributeType
      return type == .typeRegular || type == .typeSymbolicLink
    }
    for name in entries where isOurs(name, inHgrm: false) {
      let url = folder.appendingPathComponent(name)
      guard regularOrLink(url) else { continue }
      try fm.removeItem(at: url)
      removed.append(url.path)
    }
    let hgrm = folder.appendingPathComponent("hgrm")
    let type = (try? fm.attributesOfItem(atPath: hgrm.path))?[.type] as? FileAttributeType
    if type == .typeDirectory, let inside = try? fm.contentsOfDirectory(atPath: hgrm.path) {
      for name in inside where isOurs(name, inHgrm: true) {
        let url = hgrm.appendingPathComponent(name)
        guard regularOrLink(url) else { continue }
        try fm.removeItem(at: url)
        removed.append(url.path)
      }
      if (try? fm.contentsOfDirectory(atPath: hgrm.path))?.isEmpty == true { try? fm.removeItem(at: hgrm) }
    }
    return removed
  }

  /// Runs `words` and returns what it wrote to stdout, or exits 2: it cannot start, exits
  /// with a failure, or does not finish within `deadline` seconds (then it is killed). The
  /// child is always reaped.
  static func output(of words: [String], deadline: Double, what: String) throws -> String {
    guard let program = words.first, case .success(let path) = ShellWords.locate(program) else {
      printError("error: cannot start \(SafeText.escape(ShellWords.join(words)))")
      throw Exit.badInput
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = Array(words.dropFirst())
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardInput = FileHandle.nullDevice
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    do {
      try process.run()
    } catch {
      printError("error: cannot start \(SafeText.escape(ShellWords.join(words))): \(describe(error))")
      throw Exit.badInput
    }
    let collected = Mutexed(Data())
    let readDone = DispatchSemaphore(value: 0)
    let reader = pipe.fileHandleForReading
    DispatchQueue.global().async {
      // At most 16 MiB: a listing, not a flood.
      var data = Data()
      while data.count < 16 << 20 {
        let piece = reader.availableData
        if piece.isEmpty { break }
        data.append(piece)
      }
      collected.set(data)
      readDone.signal()
    }
    let end = DispatchTime.now() + .milliseconds(Int(min(deadline, 1e6) * 1000))
    if exited.wait(timeout: end) == .timedOut {
      process.terminate()
      kill(process.processIdentifier, SIGKILL)
      _ = exited.wait(timeout: .now() + 5)
      printError(
        "error: \(SafeText.escape(ShellWords.join(words))) did not finish \(what) within \(OptionRanges.format(deadline)) s"
      )
      throw Exit.badInput
    }
    _ = readDone.wait(timeout: .now() + 2)
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
      printError(
        "error: \(SafeText.escape(ShellWords.join(words))) failed \(what) (status \(process.terminationStatus))")
      throw Exit.badInput
    }
    return String(decoding: collected.get(), as: UTF8.self)
  }
}

/// A value behind a lock, for the reader thread above.
final class Mutexed<T: Sendable>: Sendable {
  private let value: Mutex<T>
  init(_ value: sending T) { self.value = Mutex(value) }
  func set(_ v: sending T) { value.withLock { $0 = v } }
  func get() -> T { value.withLock { $0 } }
}
