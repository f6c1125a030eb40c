import KenshoProtocol

/// KSP-7.2: once the consumer's `stream_cancel` reaches the producer, its emitter is inactive:
/// later chunks and the end send nothing. Untested unless a cancel arrived mid-stream.
public struct CancelStopsProducer: Check {
  public let rule = "KSP-7.2"
  public let expected = "after stream_cancel arrives, the producer's emits are refused"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let cancels = run.cancelDeliveries().filter(\.fromConsumer)
    guard !cancels.isEmpty else { return .untested("no consumer's stream_cancel reached an active producer") }
    let calls = run.emitCalls()
    for c in cancels {
      if let accepted = calls.after(stream: c.stream, event: c.event).first(where: { $0.result == .ok }) {
        return .fail(
          observed: "\(cancels.count) cancels delivered",
          run.counterexample(
            stream: c.stream, message: c.message, at: accepted.t,
            "the emitter still accepted a chunk or end after stream_cancel arrived"))
      }
    }
    return .pass(observed: "\(cancels.count) cancels stopped their producers")
  }
}
