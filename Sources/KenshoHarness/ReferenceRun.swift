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

/// One execution of a scenario against the reference bus, in process.
///
/// Every message passes through the harness's network (a ``LocalNetwork`` with a tap that
/// counts and validates it). In virtual time the run is a discrete-event simulation on a
/// ``ManualClock``, all on the calling thread; in real time it runs on the monotonic clock and
/// the calling thread waits for the streams to finish.
final class ReferenceRun: Sendable {
  let scenario: Scenario
  let seed: UInt64
  let clock: any BusClock
  let manual: ManualClock?
  let wall = SystemClock.shared
  let sweepNanos: Int64
  let defaultTimeoutNanos: Int64
  let state: RunStateBox
  let finished = DispatchSemaphore(value: 0)
  let network: LocalNetwork
  private let busesBox = Mutex<[String: any BusUnderTest]>([:])
  /// Per-chunk memory sampling, when a peak-memory check asks for it.
  let samplePeakPerChunk: Bool
  let digests: Bool
  let options: RunOptions
  let faults: FaultInjector
  let slow: SlowConsumers
  /// The implementation processes, when the run is against an adapter.
  let adapters: AdapterHost?
  /// Why the implementation could not even start, when it could not.
  let startupFailure: String?
  /// The run's history: the only input of the checks.
  let recorder: HistoryRecorder
  /// Thread allocation counter, for the history's own memory (virtual time runs on one thread).
  static let meter: @Sendable () -> Int64? = { Jemalloc.threadNet() }

  init(scenario: Scenario, seed: UInt64, options: RunOptions) {
    self.scenario = scenario
    self.seed = seed
    self.options = options
    if scenario.time.mode == .virtual {
      let m = ManualClock()
      manual = m
      clock = m
    } else {
      manual = nil
      clock = SystemClock.shared
    }
    var config = BusConfiguration()
    config.leaksEndedStreamsForTesting =
      options.leakingReference || options.referenceDefects.contains(.leaksEndedStreams)
    config.numberChunks = !options.referenceDefects.contains(.unnumberedChunks)
    config.rerunsDuplicateRequestsForTesting = options.referenceDefects.contains(.rerunsDuplicateRequests)
    config.neverSweepsForTesting = options.referenceDefects.contains(.neverSweeps)
    config.honoursFlowControl = !options.referenceDefects.contains(.withoutFlowControl)
    if let t = scenario.time.streamTimeoutMs { config.streamTimeout = .nanoseconds(Int64(t * 1e6)) }
    if let s = scenario.time.sweepIntervalMs { config.sweepInterval = .nanoseconds(Int64(s * 1e6)) }
    sweepNanos = config.sweepInterval.nanoseconds
    defaultTimeoutNanos = config.streamTimeout.nanoseconds
    samplePeakPerChunk =
      options.measure
      && scenario.expect.contains {
        if case .peakMemory = $0.kind { return true }
        if case .metric(.peakBytes, _, _) = $0.kind { return true }
        return false
      }
    digests = scenario.expect.contains { $0.kind == .payloadDigest }
    let total = scenario.workload.reduce(0) { $0 + $1.streams }
    state = RunStateBox(RunState(totalStreams: total))
    let stateRef = state
    let clockRef = clock
    let injector = FaultInjector(scenario: scenario, seed: seed, clock: clock)
    faults = injector
    let slowConsumers = SlowConsumers(scenario: scenario, clock: clock)
    slow = slowConsumers
    let recorder = HistoryRecorder(
      scenario: scenario, totalStreams: total, sweepInterval: config.sweepInterval.nanoseconds, meter: Self.meter)
    self.recorder = recorder
    injector.recorder = recorder
    injector.slow = slowConsumers
    slowConsumers.recorder = recorder
    network = LocalNetwork(
      tap: { m in
        let now = clockRef.nanoseconds()
        let tag = recorder.sent(m, origin: .bus, at: now)
        stateRef.withLock { s in
          s.wire[m.type, default: 0] += 1
          if m.type == .streamRequest && s.traceStreamId == nil { s.traceStreamId = m.streamId }
          if m.streamId != nil && m.streamId == s.traceStreamId && s.trace.count < 64 {
            s.trace.append(
              TraceEntry(
                t: Double(now) / 1e6, type: m.type.rawValue, from: m.sourceWorker, to: m.targetWorker, seq: m.seq,
                code: m.error?.code))
          }
        }
        let verdict = injector.apply(m, tag: tag)
        // A message that survives the faults waits in a slow consumer's inbox.
        if verdict == .deliver && slowConsumers.intercept(m, tag: tag) { return (.drop, tag) }
        return (verdict, tag)
      },
      arrival: { m, tag, receiver in
        guard tag >= 0 else { return }
        recorder.record(.delivered(tag, to: recorder.workerId(receiver)), at: clockRef.nanoseconds())
      })
    injector.attach(network)
    slowConsumers.attach(network)
    if let command = options.adapterCommand {
      do {
        let host = try AdapterHost(
          command: command, scenario: scenario, seed: seed, network: network, clock: clock, config: config,
          deadline: options.adapterDeadline, log: options.adapterLog,
          recorder: recorder)
        adapters = host
        startupFailure = nil
        let buses = host.makeBuses()
        busesBox.withLock { $0 = buses }
      } catch {
        adapters = nil
        startupFailure = error.description
      }
    } else {
      adapters = nil
      startupFailure = nil
    }
    for agent in scenario.agents where adapters == nil && startupFailure == nil {
      for worker in agent.workerNames {
        // Worker names were validated when the scenario was loaded.
        guard
          let bus = try? MessageBus(
            name: worker, transport: network.endpoint(worker), clock: clock, configuration: config)
        else { continue }
        busesBox.withLock { $0[worker] = bus }
      }
    }
    for agent in scenario.agents {
      for worker in agent.workerNames {
        guard let bus = buses[worker] else { continue }
        for (method, behaviour) in agent.methods {
          let generator = ChunkGenerator(content: behaviour.content, seed: seed)
          var throwsAtOnce: SerializedError?
          if behaviour.chunks == 0, case .throwError(let error) = behaviour.finish { throwsAtOnce = error }
          bus.register(method: method, throwsAtOnce: throwsAtOnce) { [unowned self] args, stream in
            self.produce(worker: worker, behaviour: behaviour, generator: generator, stream: stream)
          }
        }
      }
    }
  }

  var buses: [String: any BusUnderTest] { busesBox.withLock { $0 } }

  // MARK: Running

  /// Runs the workload to its end, or to the deadline. Returns an error message when the run
  /// did not finish.
  func execute(wallDeadline: Duration) -> String? {
    if let startupFailure { return startupFailure }
    if adapters != nil && manual == nil {
      return "UNSUPPORTED: real-time scenarios run in process only; adapters run on virtual time"
    }
    if let hello = adapters?.hello {
      let missing = Self.capabilitiesNeeded(by: scenario).subtracting(hello.capabilities).sorted()
      if !missing.isEmpty {
        return
          "UNSUPPORTED: \(hello.name) does not declare \(missing.joined(separator: ", ")), which this scenario needs"
      }
    }
    // Memory is the harness process's: it says nothing about an implementation elsewhere.
    let recorder = self.recorder
    let injector = self.faults
    let memory = MemoryMeter(
      threadLocal: manual != nil, enabled: options.measure && adapters == nil,
      excluding: { recorder.bytes + injector.bytes })
    state.withLock { $0.memory = memory }
    memory.markBaseline()
    let started = wall.nanoseconds()
    state.withLock { $0.wallStart = started }
    scheduleSampling()
    for (index, group) in scenario.workload.enumerated() { startGroup(index, group) }
    for action in scenario.actions {
      _ = clock.schedule(at: Int64(action.atMs * 1e6)) { [self] in
        switch action.kind {
        case .dispose(let agent):
          for worker in scenario.workers(agent) {
            recorder.record(.dispose(recorder.workerId(worker)), at: clock.nanoseconds())
            buses[worker]?.dispose()
          }
        }
      }
    }
    let deadline = Int64(scenario.time.deadlineMs * 1e6)
    let wallLimit = started &+ wallDeadline.nanoseconds
    var problem: String?
    if let manual {
      var steps = 0
      while !isDone {
        guard manual.runNext(notAfter: deadline) else {
          problem =
            manual.nextDeadline == nil
            ? "nothing left to happen, yet \(openCount) streams never finished"
            : "scenario deadline of \(Int(scenario.time.deadlineMs)) ms passed with \(openCount) streams open"
          break
        }
        steps &+= 1
        if steps & 1023 == 0 && wall.nanoseconds() > wallLimit {
          problem = "wall-clock deadline of \(wallDeadline) passed with \(openCount) streams open"
          break
        }
        if let failure = adapters?.failure.withLock({ $0 }) {
          problem = failure
          break
        }
        if steps & 1023 == 0 && options.cancelled() {
          problem = "interrupted with \(openCount) streams open"
          break
        }
      }
    } else {
      let limit = min(Double(wallDeadline.nanoseconds), scenario.time.deadlineMs * 1e6)
      let end = DispatchTime.now() + .nanoseconds(Int(limit))
      while finished.wait(timeout: min(end, .now() + .milliseconds(100))) == .timedOut {
        if options.cancelled() {
          problem = "interrupted with \(openCount) streams open"
          break
        }
        if DispatchTime.now() >= end {
          problem = "deadline of \(Int(limit / 1e6)) ms passed with \(openCount) streams open"
          break
        }
      }
    }
    let ended = wall.nanoseconds()
    state.withLock { s in
      s.wallEnd = ended
      s.scenarioEnd = clock.nanoseconds()
    }
    if problem == nil, let failure = adapters?.failure.withLock({ $0 }) { problem = failure }
    sample()  // the last sample is the end of the workload; settling is not part of the curve
    settle()
    memory.markEnd()
    return problem
  }

  /// After the last terminal callback: let what is due now run, and one more sweep pass, so
  /// that late callbacks (which would break KSP-4.2) and leftover entries show.
  private func settle() {
    if let manual {
      let horizon = manual.nanoseconds() &+ sweepNanos
      var steps = 0
      while steps < 1_000_000 && manual.runNext(notAfter: horizon) { steps += 1 }
      state.withLock { $0.stopSampling = true }
    } else {
      state.withLock { $0.stopSampling = true }
      Thread.sleep(forTimeInterval: 0.05)
    }
  }

  /// Adapter capabilities a scenario cannot run without (docs/ADAPTER-PROTOCOL.md).
  static func capabilitiesNeeded(by scenario: Scenario) -> Set<String> {
    var needed: Set<String> = []
    if scenario.workload.contains(where: { $0.cancelAfterChunks != nil }) { needed.insert("cancel") }
    if scenario.workload.contains(where: { $0.creditWindow != nil }) { needed.insert("flow_control") }
    let announcedCrash = scenario.agents.contains { a in
      a.methods.values.contains { if case .crash(true) = $0.finish { true } else { false } }
    }
    if announcedCrash { needed.insert("peer_down") }
    return needed
  }

  /// The run's history, once it is over: the final statistics of every bus, the
  /// implementation's capabilities, and the digests of binary streams.
  func history(complete: Bool) -> History {
    let crashed = state.withLock { $0.crashed }
    var readings: [String: StatsReading] = [:]
    for (name, bus) in buses {
      readings[name] = crashed.contains(name) ? .crashed : bus.readStats()
    }
    let digests: [Int: (sent: String, received: String)] = state.withLock { s in
      var out: [Int: (sent: String, received: String)] = [:]
      for (i, r) in s.records.enumerated() {
        if let a = r.sentDigest, let b = r.receivedDigest {
          out[i] = (a.finalize(), b.finalize())
        } else if let a = r.sentDigest {
          out[i] = (a.finalize(), "nothing")
        }
      }
      return out
    }
    var capabilities = Set(Capability.allCases)
    if let hello = adapters?.hello {
      capabilities = Set(hello.capabilities.compactMap(Capability.init(rawValue:)))
      capabilities.remove(.memory)
    }
    if !options.measure { capabilities.remove(.memory) }
    return recorder.finish(
      stats: readings, capabilities: capabilities, endedAt: clock.nanoseconds(), complete: complete, digests: digests)
  }

  var isDone: Bool { state.withLock { $0.done } }
  var openCount: Int { state.withLock { s in s.opened - s.completed + (s.totalStreams - s.opened) } }

  // MARK: Workload

  private func startGroup(_ index: Int, _ group: WorkloadGroup) {
    let consumers = scenario.workers(group.consumers)
    let producers = scenario.workers(group.producers)
    guard !consumers.isEmpty, !producers.isEmpty else { return }
    let start = Int64(group.startMs * 1e6)
    if let rate = group.ratePerSecond {
      let step = Int64(1e9 / rate)
      scheduleOpen(group: index, at: start, every: step)
    } else {
      let initial = min(group.concurrency ?? group.streams, group.streams)
      _ = clock.schedule(at: start) { [self] in
        for _ in 0..<initial { openNext(group: index) }
      }
    }
  }

  private func scheduleOpen(group: Int, at time: Int64, every step: Int64) {
    _ = clock.schedule(at: time) { [self] in
      // Open model: the stream was due at `time`, whenever the timer actually fired.
      if openNext(group: group, intended: time) { scheduleOpen(group: group, at: time &+ step, every: step) }
    }
  }

  /// Opens the group's next stream; returns whether the group has more to open.
  @discardableResult
  private func openNext(group index: Int, intended: Int64? = nil) -> Bool {
    let group = scenario.workload[index]
    let consumers = scenario.workers(group.consumers)
    let producers = scenario.workers(group.producers)
    let now = clock.nanoseconds()
    let timeout = group.timeoutMs.map { Int64($0 * 1e6) } ?? defaultTimeoutNanos
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
      s.records[stream].openedAt = now
      s.records[stream].intendedOpen = intended ?? now
      s.records[stream].openedWall = wallNow
      s.records[stream].lastActivity = now
      s.records[stream].timeout = timeout
      s.records[stream].consumer = consumer
      s.records[stream].producer = producer
    }
    guard let bus = buses[consumer] else { return ordinal + 1 < group.streams }
    let callbacks = StreamCallbacks(
      onChunk: { [self] value in try onChunk(stream, value, generator) },
      onEnd: { [self] summary in try onTerminal(stream, .end(summary)) },
      onError: { [self] error in try onTerminal(stream, .error(error)) },
      timeout: group.timeoutMs.map { .nanoseconds(Int64($0 * 1e6)) })
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
      // The consumer's bus is gone (its agent crashed): the stream fails at once.
      try? onTerminal(
        stream, .error(SerializedError(name: "BusError", message: "\(error)", code: ErrorCode.busDisposed)))
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

  private func onChunk(_ stream: Int, _ value: JSONValue, _ generator: ChunkGenerator?) throws {
    let now = clock.nanoseconds()
    let wallNow = wall.nanoseconds()
    var digestBytes: Data?
    if digests, case .string(let text) = value { digestBytes = Base64.decode(text) }
    let (cancel, shouldThrow, streamId): (Bool, Bool, String?) = state.withLock { s in
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
          cancel, group.throwingCallbacks.contains(.onChunk), r.streamId, r.emits.popFirst(),
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
      return (cancel, shouldThrow, streamId)
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

  private func onTerminal(_ stream: Int, _ terminal: Terminal) throws {
    let now = clock.nanoseconds()
    switch terminal {
    case .end(let summary): recorder.record(.onEnd(Int32(stream), summary: summary.ijsonFingerprint), at: now)
    case .error(let e): recorder.record(.onError(Int32(stream), error: recorder.error(e)), at: now)
    }
    let (first, group, shouldThrow, done): (Bool, Int, Bool, Bool) = state.withLock { s in
      var completion: UInt64?
      let (first, group, streamId): (Bool, Int, String?) = s.update(stream) { r in
        r.terminals += 1
        let first = r.terminals == 1
        if first {
          r.terminalAt = now
          switch terminal {
          case .end: r.outcome = .end
          case .error(let error): r.outcome = .error(error)
          }
          r.emits.removeAll()
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
        return (first, group, throwing, true)
      }
      return (first, group, throwing, false)
    }
    if done { finished.signal() }
    // Closed model: a finished stream makes room for the next one.
    if first && scenario.workload[group].ratePerSecond == nil { openNext(group: group) }
    if shouldThrow { throw HarnessThrow.byScenario }
  }

  // MARK: Producer

  private func produce(
    worker: String, behaviour: ProducerBehaviour, generator: ChunkGenerator, stream: any EmitterUnderTest
  ) {
    let index = recorder.streamIndex(stream.streamId) ?? WireRecord.none
    recorder.record(.handler(index, worker: recorder.workerId(worker)), at: clock.nanoseconds())
    if behaviour.chunks == 0, case .throwError = behaviour.finish { return }  // the handler threw (KSP-2.5)
    let step = Int64(behaviour.intervalMs * 1e6)
    _ = clock.schedule(at: clock.nanoseconds() &+ step) { [self] in
      pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: 0)
    }
  }

  private func pump(
    worker: String, behaviour: ProducerBehaviour, generator: ChunkGenerator, stream: any EmitterUnderTest, next: Int
  ) {
    if state.withLock({ $0.crashed.contains(worker) }) { return }
    let step = Int64(behaviour.intervalMs * 1e6)
    var index = next
    let (streamIndex, intendedOpen) = state.withLock { s in
      let i = s.streamIndex[stream.streamId]
      return (i, i.map { s.records[$0].intendedOpen } ?? clock.nanoseconds())
    }
    let h = recorder.streamIndex(stream.streamId) ?? WireRecord.none
    // As fast as possible: 256 chunks a turn. With an interval, every chunk due by now; an
    // interval under the burst window makes bursts, one a window, instead of a timer a chunk.
    let now = clock.nanoseconds()
    let batch: Int
    if step == 0 {
      batch = 256
    } else {
      var due = next
      while due < behaviour.chunks && intendedOpen &+ Int64(due + 1) &* step <= now { due += 1 }
      batch = max(1, due - next)
    }
    if stream.prefersBatches {
      // An adapter: one round trip for the whole batch.
      let end = min(behaviour.chunks, next + batch)
      let values = (next..<end).map { generator.chunk($0) }
      let sentAt = wall.nanoseconds()
      let now = clock.nanoseconds()
      state.withLock { s in
        s.emitted += values.count
        if let i = streamIndex, options.measure {
          for k in next..<end {
            s.records[i].emits.append(
              Emit(wall: sentAt, intended: step > 0 ? intendedOpen &+ Int64(k + 1) &* step : now))
          }
        }
      }
      let at = clock.nanoseconds()
      let calls = values.enumerated().map { k, value in
        recorder.begin(.emit(h, index: Int32(clamping: next + k), payload: value.ijsonFingerprint, result: .ok), at: at)
      }
      let (sent, refusal) = stream.chunks(values)
      // The calls after the refused one never happened: they are marked closed, not ok.
      for (k, call) in calls.enumerated() where k >= sent {
        recorder.settle(call, k == sent ? Self.result(refusal) : .closed)
      }
      state.withLock { s in
        guard let i = streamIndex else { return }
        for _ in sent..<values.count { _ = s.records[i].emits.popLast() }
        if digests {
          if s.records[i].sentDigest == nil { s.records[i].sentDigest = RunningDigest() }
          for k in next..<(next + sent) { s.records[i].sentDigest?.update(data: generator.bytes(k)) }
        }
      }
      index = next + sent
      if let refusal {
        if refusal == .noCredit { resumeOnCredit(worker, behaviour, generator, stream, at: index) }
        return
      }
    }
    while !stream.prefersBatches && index < behaviour.chunks && index < next + batch {
      let value = generator.chunk(index)
      let sentAt = wall.nanoseconds()
      // When chunks follow a schedule, latency counts from when each was due (no coordinated
      // omission); as-fast-as-possible chunks are due when they are sent.
      let due = step > 0 ? intendedOpen &+ Int64(index + 1) &* step : clock.nanoseconds()
      state.withLock { s in
        s.emitted += 1
        if let i = streamIndex {
          if options.measure { s.records[i].emits.append(Emit(wall: sentAt, intended: due)) }
          if digests {
            if s.records[i].sentDigest == nil { s.records[i].sentDigest = RunningDigest() }
            s.records[i].sentDigest?.update(data: generator.bytes(index))
          }
        }
      }
      let call = recorder.begin(
        .emit(h, index: Int32(clamping: index), payload: value.ijsonFingerprint, result: .ok), at: clock.nanoseconds())
      do {
        try stream.chunk(value)
      } catch {
        recorder.settle(call, Self.result(error))
        if let i = streamIndex { state.withLock { _ = $0.records[i].emits.popLast() } }
        if error == .noCredit { resumeOnCredit(worker, behaviour, generator, stream, at: index) }
        return  // cancelled or closed: the producer stops
      }
      index += 1
    }
    if index < behaviour.chunks {
      let resume = index
      let nextDue = step == 0 ? clock.nanoseconds() : intendedOpen &+ Int64(index + 1) &* step
      let at = step > 0 && step < Self.burstWindow ? max(nextDue, clock.nanoseconds() &+ Self.burstWindow) : nextDue
      _ = clock.schedule(at: at) { [self] in
        pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: resume)
      }
      return
    }
    func finish(error: Bool, _ body: () throws(EmitterError) -> Void) {
      let call = recorder.begin(.finish(h, error: error, result: .ok), at: clock.nanoseconds())
      do { try body() } catch { recorder.settle(call, Self.result(error)) }
    }
    switch behaviour.finish {
    case .end(let summary):
      finish(error: false) { () throws(EmitterError) in try stream.end(summary ?? Self.defaultSummary(behaviour)) }
    case .error(let e): finish(error: true) { () throws(EmitterError) in try stream.error(e) }
    case .throwError(let e):
      // The handler's continuation throws: the bus's own rule applies (KSP-2.5).
      finish(error: true) { () throws(EmitterError) in try stream.error(SerializedError(thrown: e)) }
    case .hang: break
    case .crash(let announced): crash(worker, announced: announced)
    }
    if behaviour.emitAfterFinish {
      // KSP-4.3: once finished, the emitter refuses locally.
      let call = recorder.begin(.emitAfterFinish(h, result: .ok), at: clock.nanoseconds())
      do throws(EmitterError) { try stream.chunk("after the end") } catch { recorder.settle(call, Self.result(error)) }
    }
  }

  static func result(_ error: EmitterError?) -> EmitResult {
    switch error {
    case .noCredit?: .noCredit
    case .cancelled?: .cancelled
    case .closed?, nil: .closed
    }
  }

  /// Producers with intervals shorter than this emit in bursts, one burst per window of
  /// scenario time (1 ms), rather than one timer per chunk.
  static let burstWindow: Int64 = 1_000_000

  /// Flow control: waits for the consumer's credit, then carries on from chunk `index`.
  private func resumeOnCredit(
    _ worker: String, _ behaviour: ProducerBehaviour, _ generator: ChunkGenerator, _ stream: any EmitterUnderTest,
    at index: Int
  ) {
    stream.onCredit { [self] in
      _ = clock.schedule(at: clock.nanoseconds()) {
        self.pump(worker: worker, behaviour: behaviour, generator: generator, stream: stream, next: index)
      }
    }
  }

  /// The agent vanishes: it sends nothing more, and the others are told only if `announced`.
  private func crash(_ worker: String, announced: Bool) {
    let first = state.withLock { $0.crashed.insert(worker).inserted }
    guard first else { return }
    recorder.record(.crash(recorder.workerId(worker), announced: announced), at: clock.nanoseconds())
    if let adapters {
      // Kill its process (SIGKILL): every worker it hosted is gone.
      for gone in adapters.kill(worker) {
        state.withLock { _ = $0.crashed.insert(gone) }
        if gone != worker {
          recorder.record(.crash(recorder.workerId(gone), announced: announced), at: clock.nanoseconds())
        }
        if announced { network.reportDown(gone) } else { network.disconnect(gone) }
      }
      return
    }
    if announced { network.reportDown(worker) } else { network.disconnect(worker) }
    // Free what the dead agent held; it is disconnected, so what dispose sends goes nowhere.
    buses[worker]?.dispose()
  }

  // MARK: Sampling

  private func scheduleSampling() {
    let every = Int64(scenario.time.sampleEveryMs * 1e6)
    _ = clock.schedule(at: clock.nanoseconds() &+ every) { [self] in
      guard !state.withLock({ $0.stopSampling || $0.done }) else { return }
      sample()
      scheduleSampling()
    }
  }

  func sample() {
    guard options.measure else { return }
    var active = 0
    var emitters = 0
    for (name, bus) in buses where !state.withLock({ $0.crashed.contains(name) }) {
      let stats = bus.stats
      active += stats.activeStreams
      emitters += stats.emitters
    }
    let t = Double(clock.nanoseconds()) / 1e6
    let process = Jemalloc.snapshot()
    state.withLock { s in
      let allocated = s.memory?.current()
      if s.samples.count >= 4096 {
        s.samples = s.samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
      }
      let window = s.windowLatency
      s.samples.append(
        Sample(
          t: t, activeStreams: active, emitters: emitters, allocated: allocated, chunksDelivered: s.delivered,
          streamsCompleted: s.completed, processAllocated: process?.allocated, processActive: process?.active,
          processResident: process?.resident,
          latencyP50Us: window.totalCount > 0 ? Double(window.valueAtPercentile(50)) / 1_000 : nil,
          latencyP99Us: window.totalCount > 0 ? Double(window.valueAtPercentile(99)) / 1_000 : nil))
      s.windowLatency.reset()
    }
  }

  static func brief(_ v: JSONValue) -> String {
    let text = (try? KenshoCodec.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
    return text.count > 60 ? String(text.prefix(60)) + "…" : text
  }
}

enum HarnessThrow: Error { case byScenario }

/// Defects the reference bus can be run with, for the harness's own tests.
@_spi(Testing) public enum ReferenceDefect: String, Sendable, Hashable, CaseIterable {
  /// Terminated streams stay in memory (KSP-9.2).
  case leaksEndedStreams
  /// Chunks carry no `seq`, so reordering and repeats reach the callbacks (KSP-3.4, 4.4).
  case unnumberedChunks
  /// A repeated `stream_request` runs the handler again (KSP-2.4).
  case rerunsDuplicateRequests
  /// The idle sweep never runs (KSP-6.2).
  case neverSweeps
  /// Producers ignore flow-control offers, as a bus without the KSP-FC extension does.
  case withoutFlowControl
}

/// When a chunk was sent (wall clock) and when it was due (scenario time).
struct Emit: Sendable {
  var wall: Int64
  var intended: Int64
}

/// How to run: measuring on or off, and a way to stop early.
public struct RunOptions: Sendable {
  /// Latency histograms and memory sampling; off, memory checks are `unsupported`.
  public var measure: Bool
  /// Polled during the run; true stops it (verdict `error`, "interrupted").
  public var cancelled: @Sendable () -> Bool

  /// Runs a reference bus that leaks every ended stream: for testing the leak verdict.
  @_spi(Testing) public var leakingReference = false
  /// Defects to switch on in the reference bus, to prove that scenarios catch them.
  @_spi(Testing) public var referenceDefects: Set<ReferenceDefect> = []
  /// Folder for heap profiles written when a leak check fails (with `MALLOC_CONF=prof:true`).
  public var profileDirectory: String?
  /// Run against the implementation this command starts (the adapter protocol) instead of
  /// the reference bus in process.
  public var adapterCommand: String?
  /// How long an adapter may take to answer one operation.
  public var adapterDeadline: Duration = .seconds(20)
  /// Receives what adapter processes write to stderr.
  public var adapterLog: (@Sendable (String) -> Void)?

  public init(
    measure: Bool = true, profileDirectory: String? = nil, cancelled: @escaping @Sendable () -> Bool = { false }
  ) {
    self.measure = measure
    self.profileDirectory = profileDirectory
    self.cancelled = cancelled
  }
}

/// What the harness knows about one stream.
struct StreamRecord: Sendable {
  enum Outcome {
    case end
    case error(SerializedError)
  }

  var group: Int
  var consumer: String?
  var producer: String?
  var streamId: String?
  var openedAt: Int64 = 0
  var openedWall: Int64 = 0
  var lastActivity: Int64 = 0
  var timeout: Int64 = 0
  var received = 0
  var handlerRuns = 0
  var terminals = 0
  var terminalAt: Int64?
  var outcome: Outcome?
  /// How the summary differed from what the producer sent, when it did.
  var summaryProblem: String?
  var traceId: String?
  var traceProblem: String?
  var requests = 0
  var requestProblem: String?
  var producerFinished = false
  var closedProblem: String?
  var mismatch: String?
  var lateCallback: String?
  var intendedOpen: Int64 = 0
  var emits = Deque<Emit>()
  var sentDigest: RunningDigest?
  var receivedDigest: RunningDigest?

  init(group: Int) { self.group = group }
}

struct RunState: Sendable {
  var totalStreams: Int
  var records: [StreamRecord] = []
  var streamIndex: [String: Int] = [:]
  var groupOpened: [Int: Int] = [:]
  /// Handler invocations, all of them (including any for streams already terminal).
  var handlerRuns = 0
  var crashed: Set<String> = []
  var opened = 0
  var completed = 0
  var done = false
  var emitted = 0
  var delivered = 0
  var bytesDelivered = 0
  var wire: [MessageType: Int] = [:]
  var invalidWire: [String] = []
  var invalidWireCount = 0
  /// Wall-clock ns from emit to onChunk.
  var latency = RunState.histogram()
  /// Scenario-time ns from when each chunk was due to onChunk (corrected for coordinated omission).
  var latencyCorrected = RunState.histogram()
  /// `latency` since the last sample.
  var windowLatency = RunState.histogram()
  /// Scenario-time ns from when a stream was due to open to its first chunk.
  var firstChunk = RunState.histogram()
  /// Scenario-time ns from when a stream was due to open to its terminal callback.
  var completion = RunState.histogram()
  var traceStreamId: String?
  var trace: [TraceEntry] = []

  static func histogram() -> Histogram<UInt64> {
    Histogram(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
  }
  var samples: [Sample] = []
  var stopSampling = false
  var memory: MemoryMeter?
  var wallStart: Int64 = 0
  var wallEnd: Int64 = 0
  var scenarioEnd: Int64 = 0

  /// Runs `body` on record `i` in place.
  mutating func update<T>(_ i: Int, _ body: (inout StreamRecord) -> T) -> T { body(&records[i]) }

  init(totalStreams: Int) {
    self.totalStreams = totalStreams
    records.reserveCapacity(totalStreams)
    streamIndex.reserveCapacity(min(totalStreams, 1 << 16))
    samples.reserveCapacity(4096)
    if totalStreams == 0 { done = true }
  }
}

/// A SHA-256 being computed. `SHA256` is a plain value (its state is copied with it) that
/// swift-crypto 3 does not mark `Sendable`.
struct RunningDigest: @unchecked Sendable {
  private var hasher = SHA256()
  mutating func update(data: some DataProtocol) { hasher.update(data: data) }
  func finalize() -> String { Data(hasher.finalize()).base64EncodedString() }
}

/// The run's bookkeeping behind one lock, shareable before the run object exists.
final class RunStateBox: Sendable {
  private let mutex: Mutex<RunState>
  init(_ state: sending RunState) { mutex = Mutex(state) }
  func withLock<R: Sendable>(_ body: (inout RunState) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Memory above a baseline: this thread's net allocations in virtual time (exact, whatever
/// other threads do), the process's `stats.allocated` in real time.
final class MemoryMeter: Sendable {
  let threadLocal: Bool
  let enabled: Bool
  /// What the harness itself holds and must not be blamed on the bus (the run's history).
  let excluding: @Sendable () -> Int64
  private let marks = Mutex<(base: Int64, peak: Int64, end: Int64?)>((0, 0, nil))

  init(threadLocal: Bool, enabled: Bool = true, excluding: @escaping @Sendable () -> Int64 = { 0 }) {
    self.threadLocal = threadLocal
    self.enabled = enabled
    self.excluding = excluding
  }

  var source: String { threadLocal ? "thread" : "process" }

  private func read() -> Int64? {
    guard enabled else { return nil }
    let raw = threadLocal ? Jemalloc.threadNet() : Jemalloc.allocated().map(Int64.init)
    return raw.map { $0 - excluding() }
  }

  func markBaseline() {
    let now = read() ?? 0
    marks.withLock { $0 = (now, 0, nil) }
  }

  func current() -> Int? {
    guard let now = read() else { return nil }
    return marks.withLock { m in
      m.peak = max(m.peak, now - m.base)
      return Int(now - m.base)
    }
  }

  func samplePeak() { _ = current() }

  func markEnd() {
    guard let now = read() else { return }
    marks.withLock { m in
      m.peak = max(m.peak, now - m.base)
      m.end = now - m.base
    }
  }

  var retained: Int? { marks.withLock { $0.end.map(Int.init) } }
  var peak: Int { marks.withLock { Int($0.peak) } }
  var available: Bool { read() != nil }
}
