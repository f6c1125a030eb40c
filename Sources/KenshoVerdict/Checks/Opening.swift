import KenshoProtocol

/// KSP-2.1: one `stream_request` per stream, to the producer, with `{method, args}` and a fresh
/// stream id.
public struct StreamRequests: Check {
  public let rule = "KSP-2.1"
  public let expected = "one stream_request {method, args} per stream, fresh ids"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var seen: [String: Int] = [:]
    var judged = 0
    for (s, tl) in run.timelines.enumerated() where tl.opened {
      judged += 1
      let info = h.streams[s]
      if let id = info.streamId {
        if let other = seen[id] {
          return .fail(
            observed: "\(judged) streams",
            run.counterexample(stream: s, "stream id \(id) was already used by stream #\(other)"))
        }
        seen[id] = s
      }
      let requests = tl.messages.filter { h.wire[Int($0)].type == .streamRequest && !h.wire[Int($0)].isForged }
      guard requests.count == 1, let m = requests.first else {
        return .fail(
          observed: "\(judged) streams", run.counterexample(stream: s, "\(requests.count) stream_request messages"))
      }
      let w = h.wire[Int(m)]
      if w.from != info.consumer || w.to != info.producer {
        return .fail(
          observed: "\(judged) streams",
          run.counterexample(stream: s, message: m, at: w.t, "\(h.describe(m)): not from the consumer to the producer"))
      }
      if w.payload != info.requestPayload {
        return .fail(
          observed: "\(judged) streams",
          run.counterexample(
            stream: s, message: m, at: w.t,
            "the stream_request's payload is not {\"method\": \"\(info.method)\", \"args\": …}"))
      }
    }
    return judged == 0 ? .untested("no stream was opened") : .pass(observed: "\(judged) streams, one request each")
  }
}

/// KSP-2.4 (or 2.2): the producer's handler runs exactly `n` times per stream, however often
/// the transport repeats its `stream_request`. KSP-2.4 is untested unless a request was
/// delivered twice.
public struct HandlerRuns: Check {
  public let rule: String
  public let perStream: Int
  public var expected: String { "the handler runs \(perStream)× per stream" }
  public init(perStream: Int, rule: String = "KSP-2.4") {
    self.perStream = perStream
    self.rule = rule
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var repeated = 0
    var judged = 0
    for (s, tl) in run.timelines.enumerated() {
      let requestDeliveries = tl.deliveries.filter {
        h.wire[Int($0.message)].type == .streamRequest && $0.to == h.streams[s].producer
      }
      guard !requestDeliveries.isEmpty else { continue }
      judged += 1
      if requestDeliveries.count > 1 { repeated += 1 }
      if tl.handlerRuns.count != perStream {
        return .fail(
          observed: "\(judged) streams",
          run.counterexample(
            stream: s,
            "the handler ran \(tl.handlerRuns.count) times for \(requestDeliveries.count) deliveries of its stream_request"
          ))
      }
    }
    if judged == 0 { return .untested("no stream_request reached a producer") }
    if rule == "KSP-2.4" && repeated == 0 { return .untested("no stream_request was delivered twice") }
    return .pass(observed: "\(judged) streams, \(repeated) requests repeated")
  }
}

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
