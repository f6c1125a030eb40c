import KenshoProtocol
import KenshoScenario

/// KSP-4.2: one terminal callback per stream, and nothing after it.
public struct ExactlyOneTerminal: Check {
  public let rule = "KSP-4.2"
  public let expected = "one terminal callback per stream, nothing after"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    var ended = 0
    for (s, tl) in run.timelines.enumerated() {
      if tl.terminals.count > 1 {
        return .fail(
          observed: "\(ended) streams ended",
          run.counterexample(
            stream: s, at: tl.terminals[1].t,
            "\(tl.terminals.count) terminal callbacks: \(tl.terminals.map { $0.0.describe(run.history) }.joined(separator: ", "))"
          ))
      }
      if tl.chunksAfterTerminal > 0 {
        return .fail(
          observed: "\(ended) streams ended",
          run.counterexample(stream: s, "\(tl.chunksAfterTerminal) onChunk calls after the terminal callback"))
      }
      if !tl.terminals.isEmpty { ended += 1 }
    }
    if ended == 0 { return .untested("no stream reached a terminal callback") }
    let open = run.timelines.count - ended
    if open > 0, run.history.complete {
      let s = run.timelines.firstIndex { $0.terminals.isEmpty } ?? 0
      return .fail(observed: "\(open) streams never ended", run.counterexample(stream: s, "no terminal callback"))
    }
    return .pass(observed: "\(ended) streams, one terminal each")
  }
}
