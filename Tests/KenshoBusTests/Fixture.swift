import KenshoBus
import KenshoProtocol
import Synchronization

/// What a consumer's callbacks saw, in order.
enum Event: Equatable, Sendable {
  case chunk(JSONValue)
  case end(JSONValue)
  case error(SerializedError)
}

/// Records the callbacks of one or more streams, with the clock reading at each.
final class Recorder: Sendable {
  private let log = Mutex<[(event: Event, at: Int64)]>([])
  let clock: any BusClock

  init(clock: any BusClock) { self.clock = clock }

  func callbacks(
    timeout: Duration? = nil, throwOnChunk: Bool = false, throwOnEnd: Bool = false, throwOnError: Bool = false
  ) -> StreamCallbacks {
    StreamCallbacks(
      onChunk: { [self] in
        record(.chunk($0))
        if throwOnChunk { throw TestFailure.thrownByCallback }
      },
      onEnd: { [self] in
        record(.end($0))
        if throwOnEnd { throw TestFailure.thrownByCallback }
      },
      onError: { [self] in
        record(.error($0))
        if throwOnError { throw TestFailure.thrownByCallback }
      },
      timeout: timeout)
  }

  func record(_ event: Event) {
    let now = clock.nanoseconds()
    log.withLock { $0.append((event, now)) }
  }

  var events: [Event] { log.withLock { $0.map(\.event) } }
  var times: [Int64] { log.withLock { $0.map(\.at) } }
  var chunks: [JSONValue] {
    events.compactMap {
      if case .chunk(let v) = $0 { return v }
      return nil
    }
  }
  var terminals: [Event] {
    events.filter {
      if case .chunk = $0 { return false }
      return true
    }
  }
  var errors: [SerializedError] {
    events.compactMap {
      if case .error(let e) = $0 { return e }
      return nil
    }
  }
}

enum TestFailure: Error { case thrownByCallback, handlerFailed }

/// Every message that crossed the network, and optional interference with them.
final class Wire: Sendable {
  private let log = Mutex<[KenshoMessage]>([])
  private let filter = Mutex<(@Sendable (KenshoMessage) -> LocalNetwork.Verdict)?>(nil)

  func tap(_ m: KenshoMessage) -> LocalNetwork.Verdict {
    log.withLock { $0.append(m) }
    return filter.withLock { $0 }?(m) ?? .deliver
  }

  /// Decides about each later message (to drop, hold or reorder them).
  func intercept(_ decide: @escaping @Sendable (KenshoMessage) -> LocalNetwork.Verdict) {
    filter.withLock { $0 = decide }
  }

  var messages: [KenshoMessage] { log.withLock { $0 } }
  func of(_ type: MessageType) -> [KenshoMessage] { messages.filter { $0.type == type } }
}

/// Two workers, `consumer` and `producer`, on one in-process network and one manual clock.
struct Fixture {
  let clock = ManualClock()
  let wire = Wire()
  let network: LocalNetwork
  let consumer: MessageBus
  let producer: MessageBus
  let recorder: Recorder

  /// `recordWire: false` keeps no log of messages (for memory measurements).
  init(configuration: BusConfiguration = BusConfiguration(), recordWire: Bool = true) throws {
    let wire = self.wire
    network = recordWire ? LocalNetwork(tap: { wire.tap($0) }) : LocalNetwork()
    consumer = try MessageBus(
      name: "consumer", transport: network.endpoint("consumer"), clock: clock, configuration: configuration)
    producer = try MessageBus(
      name: "producer", transport: network.endpoint("producer"), clock: clock, configuration: configuration)
    recorder = Recorder(clock: clock)
  }

  /// Registers `method` on the producer; the handler keeps its emitter in `emitters`.
  func registerHolding(_ method: String = "hold") -> Emitters {
    let emitters = Emitters()
    producer.registerStreamMethod(method) { _, stream in emitters.add(stream) }
    return emitters
  }

  /// Registers `method` on the producer, emitting `chunks` and then ending with `summary`.
  func registerEmitting(_ method: String = "numbers", chunks: [JSONValue], summary: JSONValue = "done") {
    producer.registerStreamMethod(method) { _, stream in
      // Emit from timers, as a producer that produces over time does.
      for (i, chunk) in chunks.enumerated() {
        _ = clock.schedule(after: .milliseconds(i + 1)) { try? stream.chunk(chunk) }
      }
      _ = clock.schedule(after: .milliseconds(chunks.count + 1)) { try? stream.end(summary) }
    }
  }

  /// Opens a stream from the producer with the recorder's callbacks.
  @discardableResult
  func open(_ method: String, args: JSONValue = .null, callbacks: StreamCallbacks? = nil, traceId: String? = nil)
    throws -> String
  {
    try consumer.callStream(
      "producer", method: method, args: args, callbacks: callbacks ?? recorder.callbacks(), traceId: traceId)
  }

  /// Runs every timer due within `duration`.
  func advance(_ duration: Duration) { clock.advance(by: duration) }
}

/// Emitters kept by a holding handler.
final class Emitters: Sendable {
  private let list = Mutex<[StreamEmitter]>([])
  func add(_ e: StreamEmitter) { list.withLock { $0.append(e) } }
  var all: [StreamEmitter] { list.withLock { $0 } }
  var first: StreamEmitter? { all.first }
  var count: Int { all.count }
}

/// A counter that can be shared with `@Sendable` closures.
final class Counter: Sendable {
  private let value = Mutex(0)
  func increment() { value.withLock { $0 += 1 } }
  var count: Int { value.withLock { $0 } }
}
