import KenshoProtocol

extension StreamTimeline {
  /// Payloads of the data chunks the consumer's bus accepted from the producer before the
  /// stream's first terminal callback: valid, addressed to the consumer, from the producer.
  func received(_ h: History, stream s: Int) -> [UInt64] {
    let info = h.streams[s]
    return deliveries.compactMap { d in
      let w = h.wire[Int(d.message)]
      guard d.beforeTerminal, d.to == info.consumer, w.type == .streamChunk, !w.creditFrame, w.problem < 0,
        w.from == info.producer, w.to == info.consumer || w.to == WireRecord.broadcast
      else { return nil }
      return w.payload
    }
  }
}

/// KSP-3.2: over a transport that keeps order, `onChunk` sees every chunk exactly once, in
/// order, unchanged (I-JSON equal). Judged on the streams whose data the harness's network
/// carried without loss, repeat or delay; an `onEnd` also requires every chunk the producer
/// emitted.
public struct OrderedDelivery: Check {
  public let rule = "KSP-3.2"
  public let expected = "every chunk once, in order, unchanged, on streams the transport kept in order"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    var chunks = 0
    for (s, tl) in run.timelines.enumerated() where tl.transportKeptOrder(h) {
      let received = tl.received(h, stream: s)
      let isEnd: Bool = if case .end? = tl.terminal?.0 { true } else { false }
      guard !received.isEmpty || isEnd || !tl.chunks.isEmpty else { continue }
      judged += 1
      chunks += tl.chunks.count
      let got = tl.chunks.map(\.payload)
      if let k = zip(got, received).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
        return .fail(
          observed: "\(judged) streams judged",
          run.counterexample(stream: s, at: tl.chunks[k].t, "onChunk \(k) got a payload other than chunk \(k) received")
        )
      }
      if got.count > received.count {
        return .fail(
          observed: "\(judged) streams judged",
          run.counterexample(
            stream: s, at: tl.chunks[received.count].t,
            "onChunk ran \(got.count) times for \(received.count) chunks received (a repeat or an invented chunk)"))
      }
      if got.count < received.count {
        return .fail(
          observed: "\(judged) streams judged",
          run.counterexample(stream: s, "\(received.count) chunks received, onChunk saw only \(got.count)"))
      }
      if isEnd {
        let emitted = tl.emitted.map(\.payload)
        if got != emitted {
          let k =
            zip(got, emitted).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            ?? min(got.count, emitted.count)
          return .fail(
            observed: "\(judged) streams judged",
            run.counterexample(
              stream: s, at: tl.terminal?.t,
              "onEnd after \(got.count) chunks; the producer emitted \(emitted.count), first difference at chunk \(k)"))
        }
      }
    }
    if judged == 0 { return .untested("no stream delivered a chunk over an order-keeping transport") }
    return .pass(observed: "\(chunks) chunks on \(judged) streams, in order")
  }
}

/// KSP-3.1: each chunk the producer's emitter accepts goes out as one `stream_chunk` to the
/// consumer, with the stream's id and the data as payload.
public struct ChunksAddressed: Check {
  public let rule = "KSP-3.1"
  public let expected = "one stream_chunk to the consumer per chunk emitted, payload unchanged"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    for (s, tl) in run.timelines.enumerated() where !tl.emitted.isEmpty {
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

/// KSP-3.2 for binary content: the SHA-256 of the bytes received equals that of the bytes sent.
public struct PayloadDigest: Check {
  public let rule = "KSP-3.2"
  public let expected = "SHA-256 of the bytes received = of the bytes sent"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    var compared = 0
    for (s, tl) in run.timelines.enumerated() {
      guard case .end? = tl.terminal?.0, let d = run.history.digests[s] else { continue }
      compared += 1
      if d.sent != d.received {
        return .fail(
          observed: "\(compared) streams compared",
          run.counterexample(stream: s, at: tl.terminal?.t, "sent SHA-256 \(d.sent), received \(d.received)"))
      }
    }
    return compared == 0 ? .untested("no binary stream ended") : .pass(observed: "\(compared) streams compared")
  }
}

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
