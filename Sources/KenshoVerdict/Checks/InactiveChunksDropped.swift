import KenshoProtocol
import KenshoScenario

/// KSP-3.5: a chunk for a stream that is no longer active at the consumer (ended, failed, timed
/// out, cancelled) is dropped: no callback runs. Untested unless such a chunk was delivered.
public struct InactiveChunksDropped: Check {
  public let rule = "KSP-3.5"
  public let expected = "chunks for an ended stream dropped, no callback"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var late = 0
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      let after = tl.deliveries.filter { d in
        let w = h.wire[Int(d.message)]
        return !d.beforeTerminal && d.to == info.consumer && w.type == .streamChunk && !w.creditFrame && w.problem < 0
      }
      late += after.count
      if !after.isEmpty && tl.chunksAfterTerminal > 0 {
        return .fail(
          observed: "\(late) late chunks delivered",
          run.counterexample(
            stream: s, message: after[0].message, at: after[0].t,
            "onChunk ran for a chunk that arrived after the stream ended"))
      }
    }
    return late == 0
      ? .untested("no chunk arrived for a stream that had ended") : .pass(observed: "\(late) late chunks dropped")
  }
}
