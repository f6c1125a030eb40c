import KenshoProtocol

/// KSP-7.3: a `stream_cancel` from anyone but the stream's consumer is ignored. Untested unless
/// the harness delivered such a cancel (fault `forge: cancel`) to an active producer.
public struct ForeignCancelIgnored: Check {
  public let rule = "KSP-7.3"
  public let expected = "a stream_cancel from another worker is ignored"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let all = run.cancelDeliveries()
    let foreign = all.filter { !$0.fromConsumer }
    guard !foreign.isEmpty else { return .untested("no foreign stream_cancel reached an active producer") }
    let genuine = Set(all.filter(\.fromConsumer).map(\.stream))
    let calls = run.emitCalls()
    for c in foreign where !genuine.contains(c.stream) {
      // Refused as cancelled, or as closed (an adapter may forget a cancelled emitter at once):
      // the producer had not finished, so only the cancel can have stopped it.
      let stopped = calls.after(stream: c.stream, event: c.event).first {
        $0.result == .cancelled || $0.result == .closed
      }
      if let refused = stopped {
        return .fail(
          observed: "\(foreign.count) foreign cancels delivered",
          run.counterexample(
            stream: c.stream, message: c.message, at: refused.t,
            "the producer took a cancel from \(run.history.describe(c.message))"))
      }
    }
    return .pass(observed: "\(foreign.count) foreign cancels ignored")
  }
}
