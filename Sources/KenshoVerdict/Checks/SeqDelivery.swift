import KenshoProtocol

/// KSP-3.4 (SHOULD): chunks are numbered in `metadata.seq`, and a consumer that sees `seq`
/// delivers in order without repeats even when the transport reorders, repeats or loses
/// messages: what `onChunk` sees is a prefix of what the producer emitted (whether `onEnd`
/// waits for all of it is KSP-4.4's, ``EndAfterChunks``). Judged on the streams whose transport
/// did not keep order.
public struct SeqDelivery: Check {
  public let rule = "KSP-3.4"
  public let expected = "chunks numbered 0, 1, 2…; onChunk in order, no repeats, under reordering and repeats"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    for (s, tl) in run.timelines.enumerated() where !tl.transportKeptOrder(h) && !tl.emitted.isEmpty {
      judged += 1
      let producer = h.streams[s].producer
      var expectedSeq: Int32 = 0
      for m in tl.messages {
        let w = h.wire[Int(m)]
        guard w.type == .streamChunk, !w.creditFrame, !w.isForged, w.from == producer else { continue }
        // A producer cut off from the relay may have lost chunks before they were seen: the
        // numbers seen must still rise, and stay below the chunks emitted.
        if tl.producerCut, w.seq > expectedSeq, Int(w.seq) < tl.emitted.count { expectedSeq = w.seq }
        if w.seq != expectedSeq {
          return .fail(
            observed: "\(judged) streams judged",
            run.counterexample(
              stream: s, message: m, at: w.t,
              w.seq < 0 ? "chunk \(expectedSeq) carries no metadata.seq" : "chunk \(expectedSeq) carries seq \(w.seq)"))
        }
        expectedSeq += 1
      }
      let got = tl.chunks.map(\.payload)
      let emitted = tl.emitted.map(\.payload)
      if got.count > emitted.count || zip(got, emitted).contains(where: { $0 != $1 }) {
        let k = zip(got, emitted).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? emitted.count
        return .fail(
          observed: "\(judged) streams judged",
          run.counterexample(
            stream: s, at: k < tl.chunks.count ? tl.chunks[k].t : nil,
            "onChunk \(k) is not chunk \(k): delivered out of order, repeated, or invented"))
      }
    }
    return judged == 0
      ? .untested("no stream's messages were reordered, repeated or lost")
      : .pass(observed: "\(judged) streams under faults, delivered in seq order")
  }
}
