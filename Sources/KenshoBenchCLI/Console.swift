import Foundation
import KenshoHarness
import KenshoScenario
import KenshoVerdict

#if canImport(Glibc)
  import Glibc
#endif

/// What the command line prints while it runs, and how.
///
/// - On a terminal: a live status line (scenario k of n, time, streams and chunks done of
///   their total), redrawn in place, and a line per scenario as it ends; verdicts in colour
///   unless `NO_COLOR` is set (to anything but the empty string) or `TERM` is `dumb`.
/// - Piped (what CI sees): a line per scenario as it ends, plus a heartbeat line for a scenario
///   that runs long, at most one every ``heartbeat`` seconds. No colour, no escape codes.
/// - `--quiet`: only scenarios that did not pass, and the summary. `--verbose`: every check.
///
/// Every text that came from a scenario or an implementation goes through `SafeText.escape`
/// before it is printed.
final class Console {
  enum Mode {
    case live, lines, quiet
  }

  let mode: Mode
  let verbose: Bool
  let colour: Bool
  /// Seconds without output after which a piped run prints a heartbeat.
  let heartbeat: Double
  private let started = Date()
  private var lastLine = Date()
  private var liveShown = false
  private var lastDraw = Date.distantPast

  init(
    quiet: Bool, verbose: Bool, heartbeat: Double, environment: [String: String] = ProcessInfo.processInfo.environment
  ) {
    let terminal = isatty(STDOUT_FILENO) != 0
    mode = quiet ? .quiet : terminal ? .live : .lines
    self.verbose = verbose
    colour = Self.wantsColour(terminal: terminal, environment: environment)
    self.heartbeat = heartbeat
  }

  /// Colour only on a terminal, and never with `NO_COLOR` (https://no-color.org) or a dumb one.
  static func wantsColour(terminal: Bool, environment: [String: String]) -> Bool {
    terminal && (environment["NO_COLOR"] ?? "").isEmpty && environment["TERM"] != "dumb"
  }

  /// `text` in the colour of `verdict`, when colour is on.
  func paint(_ text: String, _ verdict: Verdict) -> String {
    guard colour else { return text }
    let code: String
    switch verdict {
    case .pass: code = "32"
    case .untested, .unsupported: code = "36"
    case .nonStrict: code = "33"
    case .fail: code = "31;1"
    case .error: code = "35;1"
    }
    return "\u{1B}[\(code)m\(text)\u{1B}[0m"
  }

  /// Prints a finished line (already escaped), removing the live line first.
  func say(_ text: String) {
    clearLive()
    print(text)
    fflush(nil)
    lastLine = Date()
  }

  /// A line shown only with `--verbose`.
  func detail(_ text: String) {
    if verbose { say(text) }
  }

  /// Reports how far the current scenario got: redraws the live line, or prints a heartbeat
  /// when nothing was printed for ``heartbeat`` seconds. `position` is "3/46" or the like;
  /// `name` is escaped here.
  func status(_ position: String, _ name: String, _ progress: ScenarioProgress?, note: String = "") {
    let elapsed = progress?.wallSeconds ?? 0
    var parts = ["\(seconds(elapsed))"]
    if let p = progress {
      if p.streamsTotal > 0 { parts.append("streams \(p.streamsCompleted)/\(p.streamsTotal)") }
      if let planned = p.chunksPlanned, planned > 0 {
        parts.append("chunks \(p.chunksDelivered)/\(planned)")
      } else if p.chunksDelivered > 0 {
        parts.append("chunks \(p.chunksDelivered)")
      }
    }
    let escaped = SafeText.escape(name)
    let note = SafeText.escape(note)
    switch mode {
    case .quiet: return
    case .live:
      guard Date().timeIntervalSince(lastDraw) >= 0.1 || progress == nil else { return }
      lastDraw = Date()
      let total = clock(Date().timeIntervalSince(started))
      var line =
        "[\(position) \(total)] \(escaped)\(note.isEmpty ? "" : " (\(note))")  " + parts.joined(separator: "  ")
      let width = Self.terminalWidth()
      if line.count >= width { line = String(line.prefix(max(1, width - 2))) + "…" }
      print("\r" + line + "\u{1B}[K", terminator: "")
      fflush(nil)
      liveShown = true
    case .lines:
      guard progress != nil, Date().timeIntervalSince(lastLine) >= heartbeat else { return }
      say("  … [\(position)] \(escaped)\(note.isEmpty ? "" : " (\(note))"): " + parts.joined(separator: ", "))
    }
  }

  /// Removes the live line, if one is shown.
  func clearLive() {
    guard liveShown else { return }
    print("\r\u{1B}[K", terminator: "")
    fflush(nil)
    liveShown = false
  }

  func seconds(_ s: Double) -> String {
    s < 60 ? String(format: "%.1f s", s) : clock(s)
  }

  /// m:ss, or h:mm:ss.
  func clock(_ s: Double) -> String {
    let total = s.isFinite ? Int(max(0, min(s, 1e9))) : 0
    let (h, m, sec) = (total / 3600, (total / 60) % 60, total % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, sec) : String(format: "%d:%02d", m, sec)
  }

  static func terminalWidth() -> Int {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 else { return 80 }
    return Int(size.ws_col)
  }
}
