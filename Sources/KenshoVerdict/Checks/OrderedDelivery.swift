import KenshoProtocol

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
    if chunks == 0 { return .untested("no chunk was emitted on the \(judged) streams judged: no order to keep") }
    return .pass(observed: "\(chunks) chunks on \(judged) streams, in order")
  }
}
