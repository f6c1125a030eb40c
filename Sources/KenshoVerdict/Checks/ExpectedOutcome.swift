import KenshoProtocol
public import KenshoScenario

/// The terminal callbacks a scenario expects (onEnd, or onError with a code): the rule is the
/// one the code stands for (KSP-4.1, 2.3, 5.2, 6.2, 7.1, 8.1, 10.1).
public struct ExpectedOutcome: Check {
  public let match: OutcomeMatch
  public var rule: String { match.rule }
  public init(_ match: OutcomeMatch) { self.match = match }

  public var expected: String {
    var parts = [match.terminal == .end ? "onEnd" : "onError"]
    if let code = match.code { parts.append("code \(code)") }
    if let name = match.name { parts.append("name \(name)") }
    if let message = match.message { parts.append("message \"\(message)\"") }
    // A share rounds up to whole streams, and is never less than one stream (no vacuous pass).
    let share =
      match.fraction >= 1
      ? "every stream"
      : match.fraction <= 0
        ? "at least one stream" : "\(Int((match.fraction * 100).rounded())) % of streams, at least one"
    return parts.joined(separator: ", ") + " for \(share)"
  }

  func matches(_ t: StreamTimeline.Terminal?, _ h: History) -> Bool {
    switch (t, match.terminal) {
    case (.end?, .end): return true
    case (.error?, .error):
      guard let e = t?.error(h) else { return false }
      return (match.code.map { $0 == e.code } ?? true) && (match.name.map { $0 == e.name } ?? true)
        && (match.message.map { $0 == e.message } ?? true)
    default: return false
    }
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    let total = run.timelines.count
    guard total > 0 else { return .untested("no stream was opened") }
    let matching = run.timelines.filter { matches($0.terminal?.0, h) }.count
    let needed = Int((Double(total) * match.fraction).rounded(.up))
    let observed = "\(matching) of \(total) streams"
    if matching >= max(needed, 1) { return .pass(observed: observed) }
    let s = run.timelines.firstIndex { !matches($0.terminal?.0, h) } ?? 0
    let got = run.timelines[s].terminal.map { $0.0.describe(h) } ?? "no terminal callback"
    return .fail(observed: observed, run.counterexample(stream: s, at: run.timelines[s].terminal?.t, got))
  }
}
