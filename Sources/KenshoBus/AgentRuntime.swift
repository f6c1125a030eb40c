public import KenshoProtocol
import Synchronization

/// The developer API of one agent (worker), as in the Kensho seed: `registerStreamMethod`,
/// `callAgentStream`, `cancelStream`, `registerMethod` and `callAgent`, plus the Swift form
/// `for try await chunk in runtime.stream(...)`. All of it runs on one ``MessageBus``.
public final class AgentRuntime: Sendable {
  public let bus: MessageBus

  public var name: String { bus.name }

  /// Creates the agent `name` and its bus on `transport`.
  public init(
    name: String, transport: any Transport, clock: any BusClock = SystemClock.shared,
    configuration: BusConfiguration = BusConfiguration()
  ) throws(BusError) {
    bus = try MessageBus(name: name, transport: transport, clock: clock, configuration: configuration)
  }

  /// Wraps an existing bus.
  public init(bus: MessageBus) {
    self.bus = bus
  }

  // MARK: Producing

  /// Registers a synchronous stream handler. It may keep `stream` and emit later; throwing
  /// fails the stream (KSP-2.5).
  public func registerStreamMethod(_ method: String, _ handler: @escaping MessageBus.StreamHandler) {
    bus.registerStreamMethod(method, handler)
  }

  /// Registers an asynchronous stream handler, run in its own task. Throwing, or an error
  /// thrown later, fails the stream (KSP-2.5); when the stream is cancelled the task is
  /// cancelled too (KSP-7.2).
  public func registerAsyncStreamMethod(
    _ method: String, _ handler: @escaping @Sendable (JSONValue, StreamEmitter) async throws -> Void
  ) {
    bus.registerStreamMethod(method) { args, stream in
      let task = Task {
        do {
          try await handler(args, stream)
        } catch {
          try? stream.error(SerializedError(thrown: error))
        }
      }
      stream.onCancel { _ in task.cancel() }
    }
  }

  // MARK: Consuming

  /// Opens a stream with untyped callbacks and returns its `streamId` (KSP-2.1).
  @discardableResult
  public func callAgentStream(
    _ target: String, _ method: String, _ payload: JSONValue = .null, _ callbacks: StreamCallbacks,
    traceId: String? = nil
  ) throws(BusError) -> String {
    try bus.callStream(target, method: method, args: payload, callbacks: callbacks, traceId: traceId)
  }

  /// Opens a stream whose chunks decode as `Chunk` and whose summary decodes as `Summary`.
  /// A chunk that does not decode fails the stream locally: the stream is cancelled and
  /// `onError` gets code `DECODING_FAILED`.
  @discardableResult
  public func callAgentStream<Chunk: Decodable & Sendable, Summary: Decodable & Sendable>(
    _ target: String, _ method: String, _ payload: some Encodable,
    chunk: Chunk.Type = Chunk.self, summary: Summary.Type = Summary.self,
    onChunk: @escaping @Sendable (Chunk) throws -> Void,
    onEnd: @escaping @Sendable (Summary) throws -> Void,
    onError: @escaping @Sendable (SerializedError) throws -> Void = { _ in },
    timeout: Duration? = nil
  ) throws -> String {
    let args = try JSONValue(encoding: payload)
    let bus = self.bus
    let box = StreamIdBox()
    let id = try bus.callStream(
      target, method: method, args: args,
      callbacks: StreamCallbacks(
        onChunk: { value in
          let decoded: Chunk
          do {
            decoded = try value.decode(Chunk.self)
          } catch {
            if let id = box.id.withLock({ $0 }) { bus.cancelStream(id, reason: .string("chunk did not decode")) }
            throw error
          }
          try onChunk(decoded)
        },
        onEnd: { value in try onEnd(try value.decode(Summary.self)) },
        onError: onError,
        timeout: timeout),
      opened: { id in box.id.withLock { $0 = id } })
    return id
  }

  /// The stream's chunks as an asynchronous sequence. It finishes when the stream ends and
  /// throws the stream's ``SerializedError`` when it fails; cancelling the consuming task, or
  /// dropping the sequence, cancels the stream (KSP-7.1).
  public func stream(
    _ target: String, _ method: String, _ payload: JSONValue = .null, timeout: Duration? = nil
  ) -> AsyncThrowingStream<JSONValue, any Error> {
    let (sequence, continuation) = AsyncThrowingStream<JSONValue, any Error>.makeStream()
    let bus = self.bus
    do {
      let id = try bus.callStream(
        target, method: method, args: payload,
        callbacks: StreamCallbacks(
          onChunk: { continuation.yield($0) },
          onEnd: { _ in continuation.finish() },
          onError: { continuation.finish(throwing: $0) },
          timeout: timeout))
      continuation.onTermination = { termination in
        if case .cancelled = termination { bus.cancelStream(id, reason: .string("consumer stopped iterating")) }
      }
    } catch {
      continuation.finish(throwing: error)
    }
    return sequence
  }

  /// Cancels a stream this agent consumes (KSP-7.1).
  @discardableResult
  public func cancelStream(_ streamId: String, reason: JSONValue = .null) -> Bool {
    bus.cancelStream(streamId, reason: reason)
  }

  // MARK: Request/response

  /// Registers an asynchronous request handler; its result or thrown error is the response.
  public func registerMethod(_ method: String, _ handler: @escaping @Sendable (JSONValue) async throws -> JSONValue) {
    bus.registerMethod(method) { args, respond in
      Task {
        do {
          respond(.success(try await handler(args)))
        } catch {
          respond(.failure(SerializedError(thrown: error)))
        }
      }
    }
  }

  /// Calls `method` on `target` and returns its result, or throws its ``SerializedError``.
  public func callAgent(
    _ target: String, _ method: String, _ payload: JSONValue = .null, timeout: Duration? = nil
  ) async throws -> JSONValue {
    try await withCheckedThrowingContinuation { continuation in
      bus.call(target, method: method, args: payload, timeout: timeout) { continuation.resume(with: $0) }
    }
  }

  /// Disposes the agent's bus (KSP-10.1).
  public func dispose() { bus.dispose() }
}

/// Hands a stream's id to its own callbacks, which are created before the id exists.
private final class StreamIdBox: Sendable {
  let id = Mutex<String?>(nil)
}
