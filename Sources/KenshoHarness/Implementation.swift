import KenshoBus
import KenshoProtocol
import KenshoScenario
import KenshoVerdict

/// A worker's bus as the harness drives it: the reference `MessageBus` in process, or a
/// worker hosted by an implementation under test behind an adapter process.
protocol BusUnderTest: AnyObject, Sendable {
  var stats: BusStats { get }
  /// The counts KSP-9.1 speaks of, or why the bus could not give them (never zeros instead).
  func readStats() -> StatsReading
  /// Registers a stream method whose handler the harness scripts; `throwsAtOnce` makes the
  /// implementation's own handler throw that error when called (KSP-2.5).
  func register(
    method: String, throwsAtOnce: SerializedError?,
    handler: @escaping @Sendable (JSONValue, any EmitterUnderTest) -> Void)
  func open(
    _ target: String, method: String, args: JSONValue, callbacks: StreamCallbacks, throwing: Set<CallbackKind>,
    traceId: String?, opened: @escaping (String) -> Void
  ) throws -> String
  @discardableResult func cancel(_ streamId: String, reason: JSONValue) -> Bool
  func dispose()
}

/// A producer's emitter as the harness drives it.
protocol EmitterUnderTest: AnyObject, Sendable {
  var streamId: String { get }
  func chunk(_ data: JSONValue) throws(EmitterError)
  func end(_ summary: JSONValue) throws(EmitterError)
  func error(_ error: SerializedError) throws(EmitterError)
  func onCredit(_ handler: @escaping @Sendable () -> Void)
  /// Whether `chunks(_:)` should get many chunks at a time (one round trip to an adapter for
  /// all of them) rather than one.
  var prefersBatches: Bool { get }
  /// Sends chunks in order until one is refused; `then` gets how many were sent, and the
  /// refusal: at once, or (an adapter in real time) when the implementation has answered.
  func chunks(_ batch: [JSONValue], then: @escaping @Sendable ((sent: Int, refusal: EmitterError?)) -> Void)
}

extension StreamEmitter: EmitterUnderTest {
  var prefersBatches: Bool { false }

  func chunks(_ batch: [JSONValue], then: @escaping @Sendable ((sent: Int, refusal: EmitterError?)) -> Void) {
    for (i, value) in batch.enumerated() {
      do throws(EmitterError) {
        try chunk(value)
      } catch {
        then((i, error))
        return
      }
    }
    then((batch.count, nil))
  }
}

extension MessageBus: BusUnderTest {
  func readStats() -> StatsReading {
    let s = stats
    return .read(activeStreams: s.activeStreams, emitters: s.emitters)
  }

  func register(
    method: String, throwsAtOnce: SerializedError?,
    handler: @escaping @Sendable (JSONValue, any EmitterUnderTest) -> Void
  ) {
    registerStreamMethod(method) { args, stream in
      if let throwsAtOnce { throw throwsAtOnce }
      handler(args, stream)
    }
  }

  func open(
    _ target: String, method: String, args: JSONValue, callbacks: StreamCallbacks, throwing: Set<CallbackKind>,
    traceId: String?, opened: @escaping (String) -> Void
  ) throws -> String {
    // In process, the harness's own callbacks throw.
    try callStream(target, method: method, args: args, callbacks: callbacks, traceId: traceId, opened: opened)
  }

  func cancel(_ streamId: String, reason: JSONValue) -> Bool { cancelStream(streamId, reason: reason) }
}
