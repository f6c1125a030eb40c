import KenshoProtocol

/// KSP-1.4 (SHOULD): every message of a traced stream carries its request's `traceId`.
public struct TracePropagated: Check {
  public let rule = "KSP-1.4"
  public let expected = "every message of a traced stream carries its traceId"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var traced = 0
    for (s, tl) in run.timelines.enumerated() where h.streams[s].traceId != nil {
      var any = false
      for m in tl.messages where !h.wire[Int(m)].isForged {
        let w = h.wire[Int(m)]
        any = true
        if w.traceOK == false {
          return .fail(
            observed: "\(traced) traced streams",
            run.counterexample(stream: s, message: m, at: w.t, "\(h.describe(m)) does not carry the stream's traceId"))
        }
      }
      if any { traced += 1 }
    }
    return traced == 0 ? .untested("no traced stream sent a message") : .pass(observed: "\(traced) traced streams")
  }
}
