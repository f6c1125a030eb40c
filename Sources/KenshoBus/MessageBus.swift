public import KenshoProtocol
import Synchronization

/// The reference KSP/1 bus of one worker: its `activeStreams`, its producer emitters, its idle
/// sweep, and the request/response calls it has open.
///
/// The bus is thread-safe. Its state sits behind one lock that is never held while user code
/// runs. Callbacks and handlers run through a per-bus FIFO of jobs, drained by whichever thread
/// finds it idle: callbacks of one bus never overlap, run in the order their causes happened,
/// and a callback that calls back into the bus does not re-enter another callback.
///
/// Most users want the developer API of ``AgentRuntime`` on top of this.
public final class MessageBus: TransportReceiver, Sendable {
  /// A producer's handler: called once per `stream_request` (KSP-2.2). Throwing fails the
  /// stream (KSP-2.5).
  public typealias StreamHandler = @Sendable (_ args: JSONValue, _ stream: StreamEmitter) throws -> Void
  /// A request handler: calls `respond` once, now or later.
  public typealias RequestHandler =
    @Sendable (_ args: JSONValue, _ respond: @escaping @Sendable (Result<JSONValue, SerializedError>) -> Void) -> Void
  /// Completion of a request/response call.
  public typealias Completion = @Sendable (Result<JSONValue, SerializedError>) -> Void

  /// This worker's name.
  public let name: String
  public let configuration: BusConfiguration
  private let defects: BusDefects
  public let clock: any BusClock
  let transport: any Transport
  private let ids = IdGenerator()
  private let sentCount = Atomic<Int>(0)
  private let state: Mutex<State>
  private let sweepNanos: Int64
  private let timeoutNanos: Int64

  /// Creates the bus of worker `name` on `transport`, reading time from `clock`.
  public convenience init(
    name: String, transport: any Transport, clock: any BusClock = SystemClock.shared,
    configuration: BusConfiguration = BusConfiguration()
  ) throws(BusError) {
    try self.init(name: name, transport: transport, clock: clock, configuration: configuration, defects: [])
  }

  /// Creates a bus that breaks rules on purpose (``BusDefects``), for kensho-bench's own tests.
  @_spi(Testing) public init(
    name: String, transport: any Transport, clock: any BusClock = SystemClock.shared,
    configuration: BusConfiguration = BusConfiguration(), defects: BusDefects
  ) throws(BusError) {
    guard Envelope.isValidWorkerName(name) else { throw .invalidWorkerName(name) }
    self.name = name
    self.transport = transport
    self.clock = clock
    self.configuration = configuration
    self.defects = defects
    self.sweepNanos = max(1, configuration.sweepInterval.nanoseconds)
    self.timeoutNanos = configuration.streamTimeout.nanoseconds
    self.state = Mutex(
      State(duplicateWindow: configuration.duplicateWindow, leaking: defects.contains(.leaksEndedStreams)))
    transport.start(receiver: self)
  }

  // MARK: - Consumer API

  /// Opens a stream from `target`'s `method` (KSP-2.1): records it in `activeStreams`, then
  /// sends one `stream_request` with payload `{ method, args }`. Returns the new `streamId`,
  /// which `opened` also receives before the request is sent.
  @discardableResult
  public func callStream(
    _ target: String, method: String, args: JSONValue, callbacks: StreamCallbacks, traceId: String? = nil,
    opened: ((String) -> Void)? = nil
  ) throws(BusError) -> String {
    guard Envelope.isValidWorkerName(target) else { throw .invalidWorkerName(target) }
    let streamId = ids.next()
    let now = clock.nanoseconds()
    let entry = ConsumerStream(
      producer: target, callbacks: callbacks,
      timeout: callbacks.timeout?.nanoseconds ?? timeoutNanos, now: now, traceId: traceId)
    let window = callbacks.creditWindow ?? configuration.flowControlWindow
    if let window, window > 0 { entry.extrasCreatingIfNeeded().creditWindow = window }
    let sweep: Bool = try state.withLock { s throws(BusError) in
      if s.disposed { throw .disposed }
      s.streams[streamId] = entry
      return s.armSweep()
    }
    if sweep { scheduleSweep() }
    opened?(streamId)
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: target, type: .streamRequest,
        payload: .object(["method": .string(method), "args": args]), streamId: streamId, traceId: traceId,
        metadata: window.flatMap { $0 > 0 ? MessageMetadata(credit: $0) : nil }))
    return streamId
  }

  /// Cancels a stream this bus consumes (KSP-7.1): removes its entry, calls `onError` with
  /// `STREAM_CANCELLED`, and sends one `stream_cancel` to the producer. Returns whether the
  /// stream was active.
  @discardableResult
  public func cancelStream(_ streamId: String, reason: JSONValue = .null) -> Bool {
    let cancelled: ConsumerStream? = state.withLock { s in
      guard let entry = s.removeStream(streamId) else { return nil }
      s.jobs.append(.error(entry.onError, Self.failure(ErrorCode.streamCancelled, "Stream cancelled")))
      return entry
    }
    guard let cancelled else { return false }
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: cancelled.producer, type: .streamCancel,
        payload: reason, streamId: streamId, traceId: cancelled.extras?.traceId))
    runJobs()
    return true
  }

  /// Calls `method` on `target` and completes with its response. The call fails with
  /// `STREAM_TIMEOUT` after the bus's idle timeout (or `timeout`), `PRODUCER_GONE` when the
  /// target is reported gone, and `BUS_DISPOSED` on disposal.
  public func call(
    _ target: String, method: String, args: JSONValue, timeout: Duration? = nil, traceId: String? = nil,
    completion: @escaping Completion
  ) {
    let messageId = ids.next()
    let now = clock.nanoseconds()
    let outcome: (sweep: Bool, disposed: Bool) = state.withLock { s in
      if s.disposed { return (false, true) }
      s.calls[messageId] = PendingCall(
        target: target, deadline: now &+ (timeout?.nanoseconds ?? timeoutNanos), completion: completion)
      return (s.armSweep(), false)
    }
    if outcome.disposed {
      completion(.failure(Self.failure(ErrorCode.busDisposed, "Bus disposed")))
      return
    }
    if outcome.sweep { scheduleSweep() }
    transmit(
      KenshoMessage(
        messageId: messageId, sourceWorker: name, targetWorker: target, type: .request,
        payload: .object(["method": .string(method), "args": args]), traceId: traceId))
  }

  /// Sends a broadcast to every other worker.
  public func broadcast(_ payload: JSONValue) {
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: KenshoMessage.broadcastTarget, type: .broadcast,
        payload: payload))
  }

  // MARK: - Producer API

  /// Registers the handler of stream method `method`, replacing any earlier one.
  public func registerStreamMethod(_ method: String, _ handler: @escaping StreamHandler) {
    state.withLock { $0.streamHandlers[method] = handler }
  }

  /// Registers the handler of request method `method`, replacing any earlier one.
  public func registerMethod(_ method: String, _ handler: @escaping RequestHandler) {
    state.withLock { $0.requestHandlers[method] = handler }
  }

  /// Adds a handler for broadcasts from other workers.
  public func onBroadcast(_ handler: @escaping @Sendable (KenshoMessage) -> Void) {
    state.withLock { $0.broadcastHandlers.append(handler) }
  }

  // MARK: - Lifecycle and introspection

  /// Disposes the bus (KSP-10.1): each open stream terminates once with `BUS_DISPOSED` (its
  /// consumer's `onError` here; a `stream_error` to the consumer of a stream produced here),
  /// the sweep stops, pending calls fail, and the transport is released.
  public func dispose() {
    let taken: (streams: [String: ConsumerStream], emitters: [String: StreamEmitter], calls: [String: PendingCall])? =
      state.withLock { s in
        if s.disposed { return nil }
        s.disposed = true
        s.sweepTimer?.cancel()
        s.sweepTimer = nil
        defer {
          s.streams = [:]
          s.lastStream = nil
          s.emitters = [:]
          s.calls = [:]
          s.cancelHandlers = [:]
          s.creditHandlers = [:]
        }
        let error = Self.failure(ErrorCode.busDisposed, "Bus disposed")
        for entry in s.streams.values { s.jobs.append(.error(entry.onError, error)) }
        for call in s.calls.values { s.jobs.append(.complete(call.completion, .failure(error))) }
        // A producer waiting for credit resumes, and finds its emitter cancelled.
        for handler in s.creditHandlers.values { s.jobs.append(.run(handler)) }
        return (s.streams, s.emitters, s.calls)
      }
    guard let taken else { return }
    for (streamId, entry) in taken.streams {
      transmit(
        KenshoMessage(
          messageId: ids.next(), sourceWorker: name, targetWorker: entry.producer, type: .streamCancel,
          payload: .string("bus disposed"), streamId: streamId, traceId: entry.extras?.traceId))
    }
    for emitter in taken.emitters.values where emitter.markCancelled() {
      transmit(
        KenshoMessage(
          messageId: ids.next(), sourceWorker: name, targetWorker: emitter.consumer, type: .streamError,
          payload: .null, streamId: emitter.streamId, traceId: emitter.traceId,
          error: Self.failure(ErrorCode.busDisposed, "Bus disposed"),
          metadata: MessageMetadata(seq: emitter.chunksSent)))
    }
    runJobs()
    transport.close()
  }

  /// Whether ``dispose()`` was called.
  public var isDisposed: Bool { state.withLock { $0.disposed } }

  /// Counters and sizes, for the harness and tests.
  public var stats: BusStats {
    state.withLock { s in
      var dropped: [DropReason: Int] = [:]
      for reason in DropReason.allCases where s.dropped[reason.rawValue] > 0 {
        dropped[reason] = s.dropped[reason.rawValue]
      }
      return BusStats(
        activeStreams: s.streams.count, emitters: s.emitters.count, pendingCalls: s.calls.count, dropped: dropped,
        callbackFailures: s.callbackFailures, received: s.received, sent: sentCount.load(ordering: .relaxed))
    }
  }

  /// The ids in `activeStreams`.
  public var activeStreamIds: [String] { state.withLock { Array($0.streams.keys) } }

  /// The ids of streams this bus produces whose emitter is still active.
  public var emitterStreamIds: [String] { state.withLock { Array($0.emitters.keys) } }

  /// Whether a sweep timer is scheduled.
  public var isSweepScheduled: Bool { state.withLock { $0.sweepTimer != nil } }

  /// Runs one sweep now (KSP-6.2), as the timer does.
  /// A stream that times out is also cancelled at its producer (a `stream_cancel` with reason
  /// `STREAM_TIMEOUT`), so that the producer's emitter is released too (KSP-9.1).
  public func sweep() {
    let now = clock.nanoseconds()
    var expired: [(String, ConsumerStream)] = []
    var regrants: [(String, ConsumerStream, Int)] = []
    let again: Bool = state.withLock { s in
      s.sweepTimer?.cancel()
      s.sweepTimer = nil
      for (streamId, entry) in s.streams {
        let idle = now &- entry.lastActivity
        if idle > entry.timeout {
          s.removeStream(streamId)
          s.jobs.append(.error(entry.onError, Self.failure(ErrorCode.streamTimeout, "Stream timed out")))
          expired.append((streamId, entry))
        } else if idle >= sweepNanos, let limit = entry.extras?.standingGrant {
          // KSP-FC: a stream that received nothing for a sweep interval repeats its grant, in
          // case the last one was lost (grants are idempotent, so a repeat is harmless).
          regrants.append((streamId, entry, limit))
        }
      }
      for (id, call) in s.calls where now >= call.deadline {
        s.calls.removeValue(forKey: id)
        s.jobs.append(.complete(call.completion, .failure(Self.failure(ErrorCode.streamTimeout, "Call timed out"))))
      }
      s.releaseEmptyTables()
      return s.armSweep()
    }
    if again { scheduleSweep() }
    for (streamId, entry, limit) in regrants { sendGrant(limit, streamId: streamId, to: entry) }
    for (streamId, entry) in expired {
      transmit(
        KenshoMessage(
          messageId: ids.next(), sourceWorker: name, targetWorker: entry.producer, type: .streamCancel,
          payload: .string(ErrorCode.streamTimeout), streamId: streamId, traceId: entry.extras?.traceId))
    }
    runJobs()
  }

  private func scheduleSweep() {
    if defects.contains(.neverSweeps) { return }
    // A strong reference: a disposed bus cancels its timer, which then lets the bus go.
    let handle = clock.schedule(at: clock.nanoseconds() &+ sweepNanos) { self.sweep() }
    let stale: TimerHandle? = state.withLock { s in
      if s.disposed || s.sweepTimer != nil { return handle }
      s.sweepTimer = handle
      return nil
    }
    stale?.cancel()
  }

  // MARK: - Receiving

  /// Handles one message from the transport.
  public func receive(_ m: KenshoMessage) {
    let trusted: TrustedFields
    if m.targetWorker == name {
      trusted = .targetWorker
    } else if m.targetWorker == KenshoMessage.broadcastTarget {
      trusted = []
    } else {
      count(.notAddressed)
      return
    }
    // A chunk is validated once matched to its stream, which lets validation skip what the
    // match already proves (the hot path).
    if m.type == .streamChunk { return receiveChunk(m) }
    if m.validate(.received, trusting: trusted) != nil {
      count(.invalid)
      return
    }
    switch m.type {
    case .streamChunk: receiveChunk(m)
    case .streamEnd, .streamError: receiveTerminal(m)
    case .streamRequest: receiveStreamRequest(m)
    case .streamCancel: receiveCancel(m)
    case .request: receiveRequest(m)
    case .response: receiveResponse(m)
    case .broadcast: receiveBroadcast(m)
    }
  }

  /// A frame that is no KenshoMessage (KSP-1.2): counted as invalid.
  public func rejected() {
    count(.invalid)
  }

  /// The transport reports `worker` gone (KSP-8.1): streams from it fail with `PRODUCER_GONE`,
  /// streams to it are cancelled, calls to it fail.
  public func peerDown(_ worker: String) {
    let cancelled: [(StreamEmitter, (@Sendable (JSONValue) -> Void)?, (@Sendable () -> Void)?)] = state.withLock {
      s in
      let gone = Self.failure(ErrorCode.producerGone, "Producer \(worker) is gone")
      for (streamId, entry) in s.streams where entry.producer == worker {
        s.removeStream(streamId)
        s.jobs.append(.error(entry.onError, gone))
      }
      for (id, call) in s.calls where call.target == worker {
        s.calls.removeValue(forKey: id)
        s.jobs.append(.complete(call.completion, .failure(gone)))
      }
      var cancelled: [(StreamEmitter, (@Sendable (JSONValue) -> Void)?, (@Sendable () -> Void)?)] = []
      for (streamId, emitter) in s.emitters where emitter.consumer == worker {
        s.emitters.removeValue(forKey: streamId)
        cancelled.append(
          (emitter, s.cancelHandlers.removeValue(forKey: streamId), s.creditHandlers.removeValue(forKey: streamId)))
      }
      s.releaseEmptyTables()
      return cancelled
    }
    for (emitter, handler, credit) in cancelled {
      let wasActive = emitter.markCancelled()
      if wasActive, let handler { enqueue(.run { handler(.string("consumer gone")) }) }
      // A producer waiting for credit resumes, and finds its emitter cancelled.
      if let credit { enqueue(.run(credit)) }
    }
    runJobs()
  }

  private func receiveChunk(_ m: KenshoMessage) {
    // A credit frame (KSP-FC) is known by what it carries, `metadata.creditLimit`, never by
    // which table has an entry for its stream: a worker may consume a stream it produces.
    if m.sharedFields != nil, let limit = m.metadata?.other[Self.creditLimitKey] {
      return receiveCredit(m, limit)
    }
    let now = clock.nanoseconds()
    let bound = max(Self.minimumReorderWindow, configuration.reorderWindow)
    // Returns the entry, not its callback: a closure returned through the generic `withLock`
    // would be re-abstracted, which allocates.
    var grant: (limit: Int, traceId: String?)?
    let direct: ConsumerStream? = state.withLock { s in
      s.received += 1
      guard let streamId = m.streamId, let entry = s.stream(streamId), entry.producer == m.sourceWorker else {
        if defects.contains(.refreshesOnAnySender), let streamId = m.streamId, let entry = s.stream(streamId) {
          entry.lastActivity = now
        }
        let reason: DropReason =
          if m.validate(.received, trusting: .targetWorker) != nil {
            .invalid
          } else if m.streamId.flatMap({ s.stream($0) }) == nil {
            .unknownStream
          } else {
            .wrongSource
          }
        s.dropped[reason.rawValue] += 1
        return nil
      }
      if m.validate(.received, trusting: [.targetWorker, .sourceWorker, .streamId]) != nil {
        s.dropped[DropReason.invalid.rawValue] += 1
        return nil
      }
      // KSP-3.3: a chunk from the stream's producer refreshes the stream, whatever becomes of it.
      entry.lastActivity = now
      let claimed = s.accept(m, streamId, entry, bound: bound)
      if let extras = entry.extras, let window = extras.creditWindow, s.streams[streamId] === entry,
        let limit = extras.grant(acknowledged: m.metadata?.credit != nil, inOrder: entry.nextSeq, window: window)
      {
        grant = (limit, extras.traceId)
      }
      return claimed ? entry : nil
    }
    if let grant, let streamId = m.streamId {
      sendGrant(grant.limit, streamId: streamId, to: m.sourceWorker, traceId: grant.traceId)
    }
    guard let direct else { return }
    // This thread claimed the job queue and the chunk is first: call it without queueing.
    do {
      try direct.onChunk(m.payload)
    } catch {
      state.withLock { $0.callbackFailures += 1 }
    }
    drainRemaining()
  }

  /// A credit frame from the consumer of a stream produced here (KSP-FC): applies its
  /// cumulative grant, and resumes the producer if it was waiting for credit.
  private func receiveCredit(_ m: KenshoMessage, _ value: JSONValue) {
    let resume: (@Sendable () -> Void)? = state.withLock { s in
      s.received += 1
      guard m.validate(.received, trusting: .targetWorker) == nil, m.seq == nil, let streamId = m.streamId,
        let wide = value.intValue, wide >= 0, let limit = Int(exactly: wide)
      else {
        s.dropped[DropReason.invalid.rawValue] += 1
        return nil
      }
      guard let emitter = s.emitters[streamId] else {
        s.dropped[DropReason.unknownStream.rawValue] += 1
        return nil
      }
      guard emitter.consumer == m.sourceWorker else {
        s.dropped[DropReason.wrongSource.rawValue] += 1
        return nil
      }
      guard emitter.grant(upTo: limit), (emitter.availableCredit ?? 0) > 0 else { return nil }
      defer { s.releaseEmptyTables() }
      return s.creditHandlers.removeValue(forKey: streamId)
    }
    guard let resume else { return }
    enqueue(.run(resume))
    runJobs()
  }

  /// Sends the consumer's cumulative grant of stream `streamId` to its producer (KSP-FC).
  private func sendGrant(_ limit: Int, streamId: String, to entry: ConsumerStream) {
    sendGrant(limit, streamId: streamId, to: entry.producer, traceId: entry.extras?.traceId)
  }

  private func sendGrant(_ limit: Int, streamId: String, to producer: String, traceId: String?) {
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: producer, type: .streamChunk, payload: .null,
        streamId: streamId, traceId: traceId,
        metadata: MessageMetadata(other: [Self.creditLimitKey: .int(Int64(limit))])))
  }

  /// The `metadata` member of a credit frame: "chunks with a seq below this may be sent".
  static let creditLimitKey = "creditLimit"

  /// KSP-3.4: a consumer holds back at least this many out-of-order chunks per stream.
  public static let minimumReorderWindow = 1024

  private func receiveTerminal(_ m: KenshoMessage) {
    let found: Bool = state.withLock { s in
      s.received += 1
      guard let streamId = m.streamId, let entry = s.stream(streamId) else {
        s.dropped[DropReason.unknownStream.rawValue] += 1
        return false
      }
      guard entry.producer == m.sourceWorker else {
        s.dropped[DropReason.wrongSource.rawValue] += 1
        return false
      }
      if m.type == .streamEnd, let count = m.seq, count > entry.nextSeq {
        // KSP-4.4: hold the end until every earlier chunk is delivered.
        let extras = entry.extrasCreatingIfNeeded()
        extras.endCount = count
        extras.endSummary = m.payload
        entry.lastActivity = clock.nanoseconds()
        return true
      }
      s.removeStream(streamId)
      if m.type == .streamEnd {
        s.jobs.append(.end(entry.onEnd, m.payload))
      } else {
        // KSP-5.3: an error without `error` still terminates.
        let error = m.error ?? SerializedError(name: "Error", message: "Unknown stream error", code: nil)
        var delivered = error
        if delivered.code == nil { delivered.code = ErrorCode.streamError }
        s.jobs.append(.error(entry.onError, delivered))
      }
      return true
    }
    if found { runJobs() }
  }

  private func receiveStreamRequest(_ m: KenshoMessage) {
    guard let streamId = m.streamId else { return }
    let method = m.payload["method"]?.stringValue
    let args = m.payload["args"] ?? .null
    enum Outcome {
      case run(StreamHandler, StreamEmitter)
      case notFound
      case duplicate
    }
    let outcome: Outcome = state.withLock { s in
      s.received += 1
      if s.disposed {
        s.dropped[DropReason.disposed.rawValue] += 1
        return .duplicate
      }
      let key = RequestKey(source: m.sourceWorker, messageId: m.messageId)
      let repeated = s.emitters[streamId] != nil || !s.seenRequests.insert(key)
      if repeated && !defects.contains(.rerunsDuplicateRequests) {
        s.dropped[DropReason.duplicate.rawValue] += 1
        return .duplicate
      }
      guard let method, let handler = s.streamHandlers[method] else { return .notFound }
      let offered = configuration.honoursFlowControl ? m.metadata?.credit.flatMap { $0 > 0 ? $0 : nil } : nil
      let emitter = StreamEmitter(
        bus: self, streamId: streamId, consumer: m.sourceWorker, traceId: m.traceId, credit: offered)
      s.emitters[streamId] = emitter
      return .run(handler, emitter)
    }
    switch outcome {
    case .duplicate:
      return
    case .notFound:
      let what = method.map { "Stream method '\($0)' is not registered on \(name)" } ?? "stream_request has no method"
      transmit(
        KenshoMessage(
          messageId: ids.next(), sourceWorker: name, targetWorker: m.sourceWorker, type: .streamError,
          payload: .null, streamId: streamId, traceId: m.traceId,
          error: SerializedError(name: "MethodNotFoundError", message: what, code: ErrorCode.methodNotFound),
          metadata: MessageMetadata(seq: 0)))
    case .run(let handler, let emitter):
      enqueue(
        .run {
          do {
            try handler(args, emitter)
          } catch {
            // KSP-2.5: a handler that throws fails its stream (unless it already closed).
            try? emitter.error(SerializedError(thrown: error))
          }
        })
      runJobs()
    }
  }

  private func receiveCancel(_ m: KenshoMessage) {
    let taken: (StreamEmitter, (@Sendable (JSONValue) -> Void)?, (@Sendable () -> Void)?)? = state.withLock { s in
      s.received += 1
      guard let streamId = m.streamId, let emitter = s.emitters[streamId], emitter.consumer == m.sourceWorker else {
        // KSP-7.3: only the stream's consumer may cancel it.
        s.dropped[DropReason.foreignCancel.rawValue] += 1
        return nil
      }
      s.emitters.removeValue(forKey: streamId)
      defer { s.releaseEmptyTables() }
      return (
        emitter, s.cancelHandlers.removeValue(forKey: streamId), s.creditHandlers.removeValue(forKey: streamId)
      )
    }
    guard let (emitter, handler, credit) = taken else { return }
    let wasActive = emitter.markCancelled()
    if wasActive, let handler {
      let reason = m.payload
      enqueue(.run { handler(reason) })
    }
    // A producer waiting for credit resumes, and finds its emitter cancelled: nothing it holds
    // for the stream stays behind (KSP-9.2).
    if let credit { enqueue(.run(credit)) }
    runJobs()
  }

  private func receiveRequest(_ m: KenshoMessage) {
    let method = m.payload["method"]?.stringValue
    let args = m.payload["args"] ?? .null
    let handler: RequestHandler? = state.withLock { s in
      s.received += 1
      return method.flatMap { s.requestHandlers[$0] }
    }
    let requestId = m.messageId
    let caller = m.sourceWorker
    let trace = m.traceId
    let respond: @Sendable (Result<JSONValue, SerializedError>) -> Void = { result in
      var response = KenshoMessage(
        messageId: self.ids.next(), sourceWorker: self.name, targetWorker: caller, type: .response,
        payload: .null, traceId: trace, correlationId: requestId)
      switch result {
      case .success(let value): response.payload = value
      case .failure(let error): response.error = error
      }
      self.transmit(response)
    }
    guard let handler else {
      respond(
        .failure(
          SerializedError(
            name: "MethodNotFoundError", message: "Method '\(method ?? "")' is not registered on \(name)",
            code: ErrorCode.methodNotFound)))
      return
    }
    enqueue(.run { handler(args, respond) })
    runJobs()
  }

  private func receiveResponse(_ m: KenshoMessage) {
    let found: Bool = state.withLock { s in
      s.received += 1
      guard let id = m.correlationId, let call = s.calls.removeValue(forKey: id) else {
        s.dropped[DropReason.unknownCorrelation.rawValue] += 1
        return false
      }
      s.jobs.append(.complete(call.completion, m.error.map { .failure($0) } ?? .success(m.payload)))
      return true
    }
    if found { runJobs() }
  }

  private func receiveBroadcast(_ m: KenshoMessage) {
    let handlers = state.withLock { s in
      s.received += 1
      return s.broadcastHandlers
    }
    for handler in handlers { enqueue(.run { handler(m) }) }
    runJobs()
  }

  // MARK: - Producer plumbing (called by StreamEmitter)

  func sendChunk(_ emitter: StreamEmitter, seq: Int, data: JSONValue) {
    if seq == 0, let credit = emitter.availableCredit {
      // The first chunk of a flow-controlled stream acknowledges the offer (KSP-FC).
      var m = KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: emitter.consumer, type: .streamChunk, payload: data,
        streamId: emitter.streamId, seq: seq, sharing: emitter.shared)
      m.metadata = MessageMetadata(seq: seq, credit: credit + 1)  // the window: W - 1 left after this one
      transmit(m)
      return
    }
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: emitter.consumer, type: .streamChunk, payload: data,
        streamId: emitter.streamId, seq: configuration.numberChunks ? seq : nil, sharing: emitter.shared))
  }

  func finish(_ emitter: StreamEmitter, type: MessageType, payload: JSONValue, error: SerializedError?, count: Int) {
    let waiting: (@Sendable () -> Void)? = state.withLock { s in
      guard s.emitters[emitter.streamId] === emitter else { return nil }
      s.emitters.removeValue(forKey: emitter.streamId)
      s.cancelHandlers.removeValue(forKey: emitter.streamId)
      defer { s.releaseEmptyTables() }
      return s.creditHandlers.removeValue(forKey: emitter.streamId)
    }
    if let waiting {
      enqueue(.run(waiting))
      runJobs()
    }
    transmit(
      KenshoMessage(
        messageId: ids.next(), sourceWorker: name, targetWorker: emitter.consumer, type: type, payload: payload,
        streamId: emitter.streamId, traceId: emitter.traceId, error: error,
        metadata: configuration.numberChunks ? MessageMetadata(seq: count) : nil))
  }

  func setCreditHandler(_ emitter: StreamEmitter, _ handler: @escaping @Sendable () -> Void) {
    // Registered only while the emitter is in the table and waits: every way the stream ends
    // takes it out of the table together with this handler, under the same lock.
    let runNow: Bool = state.withLock { s in
      guard s.emitters[emitter.streamId] === emitter, emitter.isActive, emitter.availableCredit == 0 else {
        return true
      }
      s.creditHandlers[emitter.streamId] = handler
      return false
    }
    if runNow { handler() }
  }

  func setCancelHandler(_ emitter: StreamEmitter, _ handler: @escaping @Sendable (JSONValue) -> Void) {
    let runNow: Bool = state.withLock { s in
      guard s.emitters[emitter.streamId] === emitter, !emitter.isCancelled else { return emitter.isCancelled }
      s.cancelHandlers[emitter.streamId] = handler
      return false
    }
    if runNow { handler(.null) }
  }

  /// Sends one message and counts it.
  @inline(__always)
  private func transmit(_ m: KenshoMessage) {
    sentCount.wrappingAdd(1, ordering: .relaxed)
    transport.send(m)
  }

  private func count(_ reason: DropReason) {
    state.withLock { s in
      s.received += 1
      s.dropped[reason.rawValue] += 1
    }
  }

  // MARK: - Jobs: the per-bus FIFO of callbacks

  private func enqueue(_ job: Job) {
    state.withLock { $0.jobs.append(job) }
  }

  /// Runs queued jobs unless another thread (or an outer frame of this one) already does.
  private func runJobs() {
    let first: Job? = state.withLock { s in
      if s.runningJobs { return nil }
      guard let job = s.jobs.popFirst() else { return nil }
      s.runningJobs = true
      return job
    }
    if let first { drain(first) }
  }

  /// Runs `first`, then the rest of the queue; the caller has claimed the queue.
  private func drain(_ first: Job) {
    if !first.run() { state.withLock { $0.callbackFailures += 1 } }
    drainRemaining()
  }

  /// Runs queued jobs until the queue is empty, then releases the claim on it.
  private func drainRemaining() {
    while true {
      let next: Job? = state.withLock { s in
        if let job = s.jobs.popFirst() { return job }
        s.runningJobs = false
        return nil
      }
      guard let next else { return }
      if !next.run() { state.withLock { $0.callbackFailures += 1 } }
    }
  }

  static func failure(_ code: String, _ message: String) -> SerializedError {
    SerializedError(name: "StreamError", message: message, code: code)
  }
}

// MARK: - State

extension MessageBus {
  struct RequestKey: Hashable {
    var source: String
    var messageId: String
  }

  struct PendingCall {
    var target: String
    var deadline: Int64
    var completion: Completion
  }

  enum Job {
    case chunk(@Sendable (JSONValue) throws -> Void, JSONValue)
    case end(@Sendable (JSONValue) throws -> Void, JSONValue)
    case error(@Sendable (SerializedError) throws -> Void, SerializedError)
    case complete(Completion, Result<JSONValue, SerializedError>)
    case run(@Sendable () -> Void)

    /// Runs the job; returns false when a callback threw (KSP-5.4: contained and counted).
    func run() -> Bool {
      do {
        switch self {
        case .chunk(let callback, let value): try callback(value)
        case .end(let callback, let value): try callback(value)
        case .error(let callback, let error): try callback(error)
        case .complete(let completion, let result): completion(result)
        case .run(let body): body()
        }
        return true
      } catch {
        return false
      }
    }
  }

  struct State {
    var streams: [String: ConsumerStream] = [:]
    var lastStream: (id: String, entry: ConsumerStream)?
    var emitters: [String: StreamEmitter] = [:]
    var cancelHandlers: [String: @Sendable (JSONValue) -> Void] = [:]
    var creditHandlers: [String: @Sendable () -> Void] = [:]
    var calls: [String: PendingCall] = [:]
    var seenRequests: RecentSet<RequestKey>
    var streamHandlers: [String: StreamHandler] = [:]
    var requestHandlers: [String: RequestHandler] = [:]
    var broadcastHandlers: [@Sendable (KenshoMessage) -> Void] = []
    var dropped = [Int](repeating: 0, count: DropReason.allCases.count)
    var callbackFailures = 0
    var received = 0
    var jobs = FIFO<Job>()
    var runningJobs = false
    var disposed = false
    var sweepTimer: TimerHandle?
    let leaking: Bool
    var leaked: [ConsumerStream] = []

    init(duplicateWindow: Int, leaking: Bool) {
      seenRequests = RecentSet(capacity: duplicateWindow)
      self.leaking = leaking
    }

    /// Either claims the job queue for the caller, who then runs `job` itself before the rest
    /// of the queue, or queues `job` behind what is already there. Returns whether it claimed.
    mutating func claim(_ job: @autoclosure () -> Job) -> Bool {
      if runningJobs || !jobs.isEmpty {
        jobs.append(job())
        return false
      }
      runningJobs = true
      return true
    }

    /// The `activeStreams` entry of `streamId`, through a one-entry cache: chunks come in runs.
    mutating func stream(_ streamId: String) -> ConsumerStream? {
      if let cached = lastStream, cached.id == streamId { return cached.entry }
      guard let entry = streams[streamId] else { return nil }
      lastStream = (streamId, entry)
      return entry
    }

    /// Removes the `activeStreams` entry of `streamId`.
    @discardableResult
    mutating func removeStream(_ streamId: String) -> ConsumerStream? {
      if lastStream?.id == streamId { lastStream = nil }
      let removed = streams.removeValue(forKey: streamId)
      if leaking, let removed { leaked.append(removed) }
      releaseEmptyTables()
      return removed
    }

    /// Gives back the storage of tables that have emptied, so that memory returns to its
    /// baseline once every stream is terminal (KSP-9.2): Swift's tables keep their capacity.
    mutating func releaseEmptyTables() {
      if streams.isEmpty && streams.capacity > 64 { streams = [:] }
      if emitters.isEmpty && emitters.capacity > 64 { emitters = [:] }
      if cancelHandlers.isEmpty && cancelHandlers.capacity > 64 { cancelHandlers = [:] }
      if creditHandlers.isEmpty && creditHandlers.capacity > 64 { creditHandlers = [:] }
      if calls.isEmpty && calls.capacity > 64 { calls = [:] }
    }

    /// Whether a sweep timer must be scheduled: there is something to sweep and no timer.
    mutating func armSweep() -> Bool {
      if disposed || sweepTimer != nil || (streams.isEmpty && calls.isEmpty) { return false }
      return true
    }

    /// Takes a chunk from the stream's producer (KSP-3.2, 3.4): queues it, or holds it back
    /// until the chunks before it are in, or drops a repeat or one beyond the reorder bound.
    /// Returns whether the caller claimed the job queue and must run the chunk itself.
    mutating func accept(_ m: KenshoMessage, _ streamId: String, _ entry: ConsumerStream, bound: Int) -> Bool {
      guard let seq = m.seq else {
        entry.extras?.unnumbered += 1
        return claim(.chunk(entry.onChunk, m.payload))
      }
      if seq == entry.nextSeq {
        entry.nextSeq += 1
        let claimed = claim(.chunk(entry.onChunk, m.payload))
        if entry.extras != nil { releaseBuffered(streamId, entry) }
        return claimed
      }
      if seq < entry.nextSeq {
        dropped[DropReason.duplicate.rawValue] += 1
        return false
      }
      let extras = entry.extrasCreatingIfNeeded()
      if extras.buffered[seq] != nil {
        dropped[DropReason.duplicate.rawValue] += 1
      } else if extras.buffered.count >= bound {
        dropped[DropReason.reorderOverflow.rawValue] += 1
      } else {
        extras.buffered[seq] = m.payload
      }
      return false
    }

    /// Queues buffered chunks that are now in order, and a held end once all chunks are in.
    mutating func releaseBuffered(_ streamId: String, _ entry: ConsumerStream) {
      guard let extras = entry.extras else { return }
      while let payload = extras.buffered.removeValue(forKey: entry.nextSeq) {
        entry.nextSeq += 1
        jobs.append(.chunk(entry.onChunk, payload))
      }
      if let count = extras.endCount, count <= entry.nextSeq {
        removeStream(streamId)
        jobs.append(.end(entry.onEnd, extras.endSummary ?? .null))
      }
    }
  }
}

/// One entry of `activeStreams`. Its mutable fields are touched only under the owning bus's
/// lock, which is what makes it safe to share.
final class ConsumerStream: @unchecked Sendable {
  final class Extras {
    var traceId: String?
    /// Flow control (KSP-FC): the window offered, whether the producer acknowledged it, and
    /// the cumulative limit granted so far ("chunks with a seq below it may be sent"; the
    /// offer itself grants the window).
    var creditWindow: Int?
    var creditAcknowledged = false
    var grantedLimit = 0
    /// Chunks received without `seq`, from a producer that does not number them.
    var unnumbered = 0

    /// After a chunk was taken: the new limit to grant, once the chunks taken in order have
    /// moved half a window past the last grant; `nil` when no grant is due. The limit is the
    /// chunks taken in order plus the window, so repeats and chunks held back out of order
    /// grant nothing, and at most a window of chunks is ever in flight.
    func grant(acknowledged: Bool, inOrder: Int, window: Int) -> Int? {
      if acknowledged { creditAcknowledged = true }
      guard creditAcknowledged else { return nil }
      if grantedLimit == 0 { grantedLimit = window }
      let limit = inOrder + unnumbered + window
      guard limit - grantedLimit >= max(1, window / 2) else { return nil }
      grantedLimit = limit
      return limit
    }

    /// The grant to repeat when the stream has been idle (KSP-FC), if one is standing.
    var standingGrant: Int? { creditAcknowledged && creditWindow != nil ? grantedLimit : nil }
    var buffered: [Int: JSONValue] = [:]
    var endCount: Int?
    var endSummary: JSONValue?
  }

  let producer: String
  let onChunk: @Sendable (JSONValue) throws -> Void
  let onEnd: @Sendable (JSONValue) throws -> Void
  let onError: @Sendable (SerializedError) throws -> Void
  let timeout: Int64
  var lastActivity: Int64
  var nextSeq = 0
  /// Rarely needed state, kept out of line so that an idle stream stays small.
  var extras: Extras?

  init(producer: String, callbacks: StreamCallbacks, timeout: Int64, now: Int64, traceId: String?) {
    self.producer = producer
    self.onChunk = callbacks.onChunk
    self.onEnd = callbacks.onEnd
    self.onError = callbacks.onError
    self.timeout = timeout
    self.lastActivity = now
    if let traceId {
      let extras = Extras()
      extras.traceId = traceId
      self.extras = extras
    }
  }

  func extrasCreatingIfNeeded() -> Extras {
    if let extras { return extras }
    let created = Extras()
    extras = created
    return created
  }
}

extension SerializedError {
  /// The wire form of a thrown error (KSP-2.5): its own fields for a `SerializedError`, else
  /// its type name and description, with code `STREAM_ERROR`.
  public init(thrown error: any Error) {
    if let serialized = error as? SerializedError {
      self = serialized
      if code == nil { code = ErrorCode.streamError }
    } else {
      self.init(
        name: String(describing: type(of: error)), message: String(describing: error), code: ErrorCode.streamError)
    }
  }
}
