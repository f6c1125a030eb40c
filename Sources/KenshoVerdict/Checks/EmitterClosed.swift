import KenshoProtocol

/// KSP-4.3: after `end` or `error`, the producer sends nothing more for the stream, and further
/// emits are refused locally.
public struct EmitterClosed: Check {
  public let rule = "KSP-4.3"
  public let expected = "nothing sent after end or error; further emits refused"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var finished = 0
    var tried = 0
    for (s, tl) in run.timelines.enumerated() {
      guard let finish = tl.finish, finish.result == .ok else { continue }
      finished += 1
      let producer = h.streams[s].producer
      var closed = false
      for m in tl.messages {
        let w = h.wire[Int(m)]
        guard w.from == producer, !w.isForged, w.type != .streamRequest, !w.creditFrame else { continue }
        if closed {
          return .fail(
            observed: "\(finished) streams finished",
            run.counterexample(stream: s, message: m, at: w.t, "\(h.describe(m)) sent after the stream's end or error"))
        }
        if w.type == .streamEnd || w.type == .streamError { closed = true }
      }
      if let after = tl.emitAfterFinish {
        tried += 1
        if after == .ok {
          return .fail(
            observed: "\(finished) streams finished",
            run.counterexample(stream: s, "the emitter accepted a chunk after the end"))
        }
      }
    }
    return finished == 0
      ? .untested("no producer finished a stream")
      : .pass(observed: "\(finished) streams finished, \(tried) late emits refused")
  }
}
