import KenshoProtocol
import KenshoScenario

/// KSP-4.1: `end(summary)` sends one `stream_end`, and `onEnd` gets the producer's summary.
public struct SummaryPreserved: Check {
  public let rule = "KSP-4.1"
  public let expected = "one stream_end per end(), onEnd receives the producer's summary"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      guard let finish = tl.finish, !finish.error, finish.result == .ok else { continue }
      judged += 1
      let ends = tl.messages.filter {
        h.wire[Int($0)].type == .streamEnd && h.wire[Int($0)].from == info.producer && !h.wire[Int($0)].isForged
      }
      // A producer cut off from the relay may have lost its stream_end before anyone saw it.
      if ends.count > 1 || (ends.isEmpty && !tl.producerCut) {
        return .fail(
          observed: "\(judged) streams ended by their producer",
          run.counterexample(stream: s, at: finish.t, "end() sent \(ends.count) stream_end messages"))
      }
      if case .end(let summary)? = tl.terminal?.0, let planned = info.plannedSummary, summary != planned {
        return .fail(
          observed: "\(judged) streams ended by their producer",
          run.counterexample(stream: s, at: tl.terminal?.t, "onEnd got another summary than the producer sent"))
      }
    }
    return judged == 0
      ? .untested("no producer ended a stream") : .pass(observed: "\(judged) streams ended by their producer")
  }
}
