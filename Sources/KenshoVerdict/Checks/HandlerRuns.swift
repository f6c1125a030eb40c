import KenshoProtocol

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
