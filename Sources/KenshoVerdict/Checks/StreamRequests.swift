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
      // A consumer cut off from the relay may have lost its request before anyone saw it.
      if requests.isEmpty && tl.consumerCut { continue }
      judged += 1
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
    return judged == 0
      ? .untested("no stream was opened (or its request was lost in a disconnection)")
      : .pass(observed: "\(judged) streams, one request each")
  }
}
