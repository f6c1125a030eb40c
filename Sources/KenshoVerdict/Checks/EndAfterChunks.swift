import KenshoProtocol

/// KSP-4.4 (SHOULD): with chunks numbered (KSP-3.4), `stream_end` carries the number of chunks
/// sent in `metadata.seq`, and the consumer runs `onEnd` only after every earlier chunk.
///
/// Judged on every stream its producer ended: the `stream_end` it sent must carry the count of
/// chunks its emitter accepted, and `onEnd`, when it ran, must follow that many `onChunk`s. The
/// situation that tests the consumer's side, an end that reached it before some of the chunks
/// (delayed, reordered or lost), is counted in the observation. A bus that does not number its
/// chunks breaks this SHOULD rule (NON-STRICT); KSP-3.2 and 4.1 judge what it did deliver.
public struct EndAfterChunks: Check {
  public let rule = "KSP-4.4"
  public let expected = "stream_end carries metadata.seq = chunks sent; onEnd only after every chunk"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var ends = 0
    var overtaken = 0
    func observed() -> String {
      "\(ends) stream ends checked, \(overtaken) of them reached the consumer before some of their chunks"
    }
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      guard let finish = tl.finish, !finish.error, finish.result == .ok else { continue }
      let sent = tl.emitted.count
      // The stream_end its producer sent (the first: a repeat is the transport's).
      guard
        let end = tl.messages.first(where: { m in
          let w = h.wire[Int(m)]
          return w.type == .streamEnd && w.from == info.producer && !w.isForged
        })
      else { continue }
      ends += 1
      let w = h.wire[Int(end)]
      if w.seq != Int32(clamping: sent) {
        return .fail(
          observed: observed(),
          run.counterexample(
            stream: s, message: end, at: w.t,
            w.seq < 0
              ? "stream_end after \(sent) chunks carries no metadata.seq"
              : "stream_end after \(sent) chunks carries metadata.seq \(w.seq)"))
      }
      // Did the end reach the consumer before every chunk had (at least once)?
      let firstEnd = tl.deliveries.first { $0.message == end && $0.to == info.consumer }?.t
      var reached = Set<Int32>()
      for d in tl.deliveries where d.to == info.consumer {
        if let firstEnd, d.t > firstEnd { break }
        let c = h.wire[Int(d.message)]
        if c.type == .streamChunk, c.from == info.producer, !c.isForged, !c.creditFrame, c.seq >= 0 {
          reached.insert(c.seq)
        }
      }
      if firstEnd != nil && reached.count < sent { overtaken += 1 }
      if case .end? = tl.terminal?.0, tl.chunks.count < sent {
        return .fail(
          observed: observed(),
          run.counterexample(
            stream: s, message: end, at: tl.terminal?.t,
            "onEnd after \(tl.chunks.count) of \(sent) chunks: it did not wait for the missing ones"))
      }
    }
    return ends == 0 ? .untested("no producer ended a stream") : .pass(observed: observed())
  }
}
