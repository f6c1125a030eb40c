import KenshoProtocol

/// KSP-3.1: each chunk the producer's emitter accepts goes out as one `stream_chunk` to the
/// consumer, with the stream's id and the data as payload.
public struct ChunksAddressed: Check {
  public let rule = "KSP-3.1"
  public let expected = "one stream_chunk to the consumer per chunk emitted, payload unchanged"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    // A producer cut off from the relay may have lost chunks before anyone saw them: its
    // streams' chunks cannot be matched one to one.
    for (s, tl) in run.timelines.enumerated() where !tl.emitted.isEmpty && !tl.producerCut {
      judged += 1
      let info = h.streams[s]
      let sent = tl.messages.filter {
        let w = h.wire[Int($0)]
        return w.type == .streamChunk && !w.creditFrame && w.from == info.producer && !w.isForged
      }
      for (k, e) in tl.emitted.enumerated() {
        guard k < sent.count else {
          return .fail(
            observed: "\(judged) streams",
            run.counterexample(
              stream: s, at: e.t, "chunk \(k) was accepted by the emitter but no stream_chunk went out for it"))
        }
        let w = h.wire[Int(sent[k])]
        if w.to != info.consumer {
          return .fail(
            observed: "\(judged) streams",
            run.counterexample(
              stream: s, message: sent[k], at: w.t, "chunk \(k) was addressed to \(h.name(w.to)), not the consumer"))
        }
        if w.payload != e.payload {
          return .fail(
            observed: "\(judged) streams",
            run.counterexample(
              stream: s, message: sent[k], at: w.t, "chunk \(k) went out with another payload than emitted"))
        }
      }
      if sent.count > tl.emitted.count {
        let extra = sent[tl.emitted.count]
        return .fail(
          observed: "\(judged) streams",
          run.counterexample(
            stream: s, message: extra, at: h.wire[Int(extra)].t,
            "\(sent.count) stream_chunk messages for \(tl.emitted.count) chunks emitted"))
      }
    }
    if judged == 0 { return .untested("no producer emitted a chunk") }
    return .pass(observed: "\(judged) streams, every chunk addressed to its consumer")
  }
}
