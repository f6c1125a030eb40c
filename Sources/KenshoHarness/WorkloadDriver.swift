import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
@_spi(Testing) import KenshoBus
import KenshoMemory
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// The workload driver: opens each group's streams (closed or open model) on the consumers
/// and records what their callbacks see.
extension ReferenceRun {
  // MARK: Workload

  func startGroup(_ index: Int, _ group: WorkloadGroup) {
    let consumers = scenario.workers(group.consumers)
    let producers = scenario.workers(group.producers)
    guard !consumers.isEmpty, !producers.isEmpty else { return }
    let start = Nanos.from(ms: group.startMs)
    if let rate = group.ratePerSecond {
      let step = Nanos.interval(perSecond: rate)
      scheduleOpen(group: index, at: start, every: step)
    } else {
      let initial = min(group.concurrency ?? group.streams, group.streams)
      _ = clock.schedule(at: start) { [self] in
        for _ in 0..<initial { openNext(group: index) }
      }
    }
  }

  func scheduleOpen(group: Int, at time: Int64, every step: Int64) {
    _ = clock.schedule(at: time) { [self] in
      // Open model: the stream was due at `time`, whenever the timer actually fired.
      if openNext(group: group, intended: time) { scheduleOpen(group: group, at: time &+ step, every: step) }
    }
  }

  /// Opens the group's next stream; returns whether the group has more to open.
  @discardableResult
  func openNext(group index: Int, intended: Int64? = nil) -> Bool {
    let group = scenario.workload[index]
    let consumers = scenario.workers(group.consumers)
    let producers = scenario.workers(group.producers)
    let now = clock.nanoseconds()
    let timeout = group.timeoutMs.map(Nanos.from(ms:)) ?? defaultTimeoutNanos
    let claimed: (stream: Int, ordinal: Int)? = state.withLock { s in
      let ordinal = s.groupOpened[index, default: 0]
      guard ordinal < group.streams else { return nil }
      s.groupOpened[index] = ordinal + 1
      let stream = s.records.count
      s.records.append(StreamRecord(group: index))
      s.opened += 1
      // The history numbers streams as the records do.
      let pair = ordinal % (consumers.count * producers.count)
      let producer = producers[pair / consumers.count]
      let b = scenario.behaviour(of: group.method, on: producer)
      var info = StreamInfo(
        group: index, consumer: recorder.workerId(consumers[pair % consumers.count]),
        producer: recorder.workerId(producer), method: group.method,
        requestPayload: JSONValue.object(["method": .string(group.method), "args": group.args]).ijsonFingerprint,
        timeout: timeout, plannedChunks: b?.chunks ?? 0, plannedFinish: Self.planned(b))
      if let b, case .end(let summary) = b.finish {
        info.plannedSummary = (summary ?? Self.defaultSummary(b)).ijsonFingerprint
      }
      info.creditWindow = group.creditWindow
      info.cancelAfterChunks = group.cancelAfterChunks
      info.throwingCallbacks = group.throwingCallbacks
      info.openedAt = now
      info.dueAt = intended ?? now
      _ = recorder.addStream(info)
      return (stream, ordinal)
    }
    guard let (stream, ordinal) = claimed else { return false }
    let pair = ordinal % (consumers.count * producers.count)
    let consumer = consumers[pair % consumers.count]
    let producer = producers[pair / consumers.count]
    let behaviour = scenario.behaviour(of: group.method, on: producer)
    let generator = behaviour.map { ChunkGenerator(content: $0.content, seed: seed) }
    let wallNow = wall.nanoseconds()
    recorder.record(.open(Int32(stream)), at: now)
    state.withLock { s in
      s.records[stream].intendedOpen = intended ?? now
      s.records[stream].openedWall = wallNow
      s.records[stream].consumer = consumer
    }
    guard let bus = buses[consumer] else { return ordinal + 1 < group.streams }
    let callbacks = StreamCallbacks(
      onChunk: { [self] value in try onChunk(stream, value, generator) },
      onEnd: { [self] summary in try onTerminal(stream, .end(summary)) },
      onError: { [self] error in try onTerminal(stream, .error(error)) },
      timeout: group.timeoutMs.map(Nanos.duration(ms:)))
    var withCredit = callbacks
    withCredit.creditWindow = group.creditWindow
    do {
      let traceId = group.traced ? "trace-\(stream)" : nil
      _ = try bus.open(
        producer, method: group.method, args: group.args, callbacks: withCredit, throwing: group.throwingCallbacks,
        traceId: traceId,
        opened: { id in
          self.recorder.opened(Int32(stream), streamId: id, traceId: traceId, at: self.clock.nanoseconds())
          self.state.withLock { s in
            s.records[stream].streamId = id
            s.streamIndex[id] = stream
          }
        })
    } catch {
      recorder.record(.openFailed(Int32(stream)), at: clock.nanoseconds())
      // The consumer's bus is gone (disposed, or its agent crashed): the stream fails, as the
      // next event rather than from here, so that a closed model of many streams opening on a
      // dead bus loops instead of recursing (a stack overflow at 100 000 streams).
      let failure = SerializedError(name: "BusError", message: "\(error)", code: ErrorCode.busDisposed)
      _ = clock.schedule(at: clock.nanoseconds()) { [self] in try? onTerminal(stream, .error(failure)) }
    }
    return ordinal + 1 < group.streams
  }

  static func defaultSummary(_ b: ProducerBehaviour) -> JSONValue { .object(["chunks": .int(Int64(b.chunks))]) }

  static func planned(_ b: ProducerBehaviour?) -> PlannedFinish {
    guard let b else { return .noMethod }
    switch b.finish {
    case .end: return .end
    case .error: return .error
    case .throwError: return .throwError
    case .hang: return .hang
    case .crash: return .crash
    }
  }

  // MARK: Consumer callbacks

  func onChunk(_ stream: Int, _ value: JSONValue, _ generator: ChunkGenerator?) throws {
    while options.hangsInOnChunk { Thread.sleep(forTimeInterval: 0.05) }
    let now = clock.nanoseconds()
    let wallNow = wall.nanoseconds()
    var digestBytes: Data?
    if digests, case .string(let text) = value { digestBytes = Base64.decode(text) }
    let (cancel, shouldThrow, streamId, delivered, memory): (Bool, Bool, String?, Int, MemoryMeter?) = state.withLock {
      s in
      let (cancel, shouldThrow, streamId, sent, opened) = s.update(stream) { r in
        let index = r.received
        r.received += 1
        if let digestBytes {
          if r.receivedDigest == nil { r.receivedDigest = RunningDigest() }
          r.receivedDigest?.update(data: digestBytes)
        }
        let group = scenario.workload[r.group]
        let cancel = group.cancelAfterChunks.map { r.received == $0 } ?? false
        return (
          cancel, group.throwingCallbacks.contains(.onChunk), r.streamId, r.popEmit(),
          index == 0 ? r.intendedOpen : nil
        )
      }
      if let sent, options.measure {
        let gap = UInt64(max(0, wallNow - sent.wall))
        _ = s.latency.record(gap)
        _ = s.windowLatency.record(gap)
        _ = s.latencyCorrected.record(UInt64(max(0, now - sent.intended)))
      }
      if let opened, options.measure { _ = s.firstChunk.record(UInt64(max(0, now - opened))) }
      s.delivered += 1
      s.bytesDelivered += generator?.approximateBytes ?? 0
      return (cancel, shouldThrow, streamId, s.delivered, s.memory)
    }
    if let memory, memory.warmUpChunks > 0, delivered == memory.warmUpChunks {
      _ = clock.schedule(at: clock.nanoseconds()) { memory.passWarmUp() }
    }
    recorder.record(.onChunk(Int32(stream), payload: value.ijsonFingerprint), at: now)
    if samplePeakPerChunk { state.withLock { $0.memory }?.samplePeak() }
    if cancel, let streamId, let consumer = state.withLock({ $0.records[stream].consumer }) {
      let accepted = buses[consumer]?.cancel(streamId, reason: .string("cancelAfterChunks")) ?? false
      recorder.record(.cancel(Int32(stream), accepted: accepted), at: clock.nanoseconds())
    }
    if shouldThrow { throw HarnessThrow.byScenario }
  }

  enum Terminal {
    case end(JSONValue)
    case error(SerializedError)
  }

  func onTerminal(_ stream: Int, _ terminal: Terminal) throws {
    let now = clock.nanoseconds()
    switch terminal {
    case .end(let summary): recorder.record(.onEnd(Int32(stream), summary: summary.ijsonFingerprint), at: now)
    case .error(let e): recorder.record(.onError(Int32(stream), error: recorder.error(e)), at: now)
    }
    let (first, group, shouldThrow, done, completed): (Bool, Int, Bool, Bool, Int) = state.withLock { s in
      var completion: UInt64?
      let (first, group, streamId): (Bool, Int, String?) = s.update(stream) { r in
        r.terminals += 1
        let first = r.terminals == 1
        if first {
          r.emits.removeAll()
          r.sendsStamped = 0
          if options.measure { completion = UInt64(max(0, now - r.intendedOpen)) }
        }
        return (first, r.group, r.streamId)
      }
      if let completion { _ = s.completion.record(completion) }
      if first {
        s.completed += 1
        if let streamId { s.streamIndex.removeValue(forKey: streamId) }
      }
      let kind: CallbackKind
      if case .end = terminal { kind = .onEnd } else { kind = .onError }
      let throwing = scenario.workload[group].throwingCallbacks.contains(kind)
      if first && s.completed == s.totalStreams && !s.done {
        s.done = true
        return (first, group, throwing, true, s.completed)
      }
      return (first, group, throwing, false, s.completed)
    }
    if done { finished.signal() }
    // The implementation has warmed up: the memory baseline is taken again, outside this
    // callback (through an adapter, a reading is an operation of its own).
    if first, let memory = state.withLock({ $0.memory }), memory.warmUpStreams > 0, completed == memory.warmUpStreams,
      completed < state.withLock({ $0.totalStreams })
    {
      _ = clock.schedule(at: clock.nanoseconds()) { memory.passWarmUp() }
    }
    // Closed model: a finished stream makes room for the next one.
    if first && scenario.workload[group].ratePerSecond == nil { openNext(group: group) }
    if shouldThrow { throw HarnessThrow.byScenario }
  }
}

enum HarnessThrow: Error { case byScenario }

/// When a chunk was sent (wall clock) and when it was due (scenario time).
struct Emit: Sendable {
  var wall: Int64
  var intended: Int64
}
