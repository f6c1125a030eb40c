import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
import KenshoAdapterProtocol
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
  /// The relay the workers talk through, for a scenario with network kind `relay`.
  let relay: RelayNetwork?
  /// Thread allocation counter, for the history's own memory (virtual time runs on one thread).
  static let meter: @Sendable () -> Int64? = { Jemalloc.threadNet() }

  init(scenario: Scenario, seed: UInt64, options: RunOptions) {
    self.scenario = scenario
    self.seed = seed
    self.options = options
    var executor: DispatchQueue?
    if scenario.time.mode == .virtual {
      let m = ManualClock()
      manual = m
      clock = m
    } else if options.adapterCommand != nil {
      // Real time through adapters: the harness's side runs on one serial queue.
      let queue = DispatchQueue(label: "kensho.harness")
      executor = queue
      manual = nil
      clock = RunClock(queue: queue)
    } else {
      manual = nil
      clock = RunClock()
    }
    // Through adapters in real time, a chunk's latency counts from the producer's `send` of it.
    let stampsSends = executor != nil
    var config = BusConfiguration()
    var defects: BusDefects = []
    if options.leakingReference || options.referenceDefects.contains(.leaksEndedStreams) {
      defects.insert(.leaksEndedStreams)
    }
    if options.referenceDefects.contains(.rerunsDuplicateRequests) { defects.insert(.rerunsDuplicateRequests) }
    if options.referenceDefects.contains(.neverSweeps) { defects.insert(.neverSweeps) }
    if options.referenceDefects.contains(.refreshesOnAnySender) { defects.insert(.refreshesOnAnySender) }
    config.numberChunks = !options.referenceDefects.contains(.unnumberedChunks)
    config.honoursFlowControl = !options.referenceDefects.contains(.withoutFlowControl)
    if let t = scenario.time.streamTimeoutMs { config.streamTimeout = Nanos.duration(ms: t) }
    if let s = scenario.time.sweepIntervalMs { config.sweepInterval = Nanos.duration(ms: s) }
    sweepNanos = config.sweepInterval.nanoseconds
    defaultTimeoutNanos = config.streamTimeout.nanoseconds
    // Per chunk only in process: through an adapter each reading is an operation (and a collection).
    samplePeakPerChunk =
      options.measure && options.adapterCommand == nil
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
    let sendTap = SendTap(recorder: recorder, state: stateRef, clock: clockRef, stampsSends: stampsSends)
    network = LocalNetwork(
      tap: { m in
        let tag = sendTap(m)
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
    // A relay scenario's relay first: an adapter's buses join it as they are configured.
    var relay: RelayNetwork?
    var relayFailure: String?
    if scenario.network.kind == .relay {
      do throws(AdapterFailure) {
        relay = try RelayNetwork.open(
          for: scenario, options: options, faults: injector, recorder: recorder, clock: clock,
          observe: options.adapterCommand == nil ? nil : sendTap)
      } catch {
        relayFailure = error.description
      }
    }
    var failure: String?
    if let command = options.adapterCommand, relayFailure == nil {
      do {
        let host = try AdapterHost(
          command: command, scenario: scenario, seed: seed, network: network, clock: clock, config: config,
          deadline: options.adapterDeadline, log: options.adapterLog,
          recorder: recorder, executor: executor,
          relay: relay.map { AdapterConfiguration.Relay(url: $0.url.description, token: $0.token) },
          hotLines: options.hotLines)
        adapters = host
        let buses = host.makeBuses()
        busesBox.withLock { $0 = buses }
        if let relay {
          // Deliveries are known by the connections' labels: each worker's must be there.
          let workers = scenario.agents.flatMap(\.workerNames)
          let missing = relay.awaitLabels(workers, deadline: RelayNetwork.startDeadline)
          if !missing.isEmpty {
            failure =
              "\(host.hello.name) acknowledged configure, but no connection labelled ?worker=NAME was open at the relay "
              + "for \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? " (\(missing.count) in all)" : "") "
              + "within \(RelayNetwork.startDeadline): in relay mode each worker joins with its name as the `worker` "
              + "query item (docs/ADAPTER-PROTOCOL.md)"
          }
        }
      } catch {
        adapters = nil
        failure = error.description
      }
    } else {
      adapters = nil
    }
    for agent in scenario.agents where adapters == nil && failure == nil && relayFailure == nil {
      for worker in agent.workerNames where relayFailure == nil {
        let transport: any Transport
        if let relay {
          do {
            transport = try relay.transport(for: worker, recorder: recorder, clock: clock, state: stateRef)
          } catch {
            relayFailure = error.description
            continue
          }
        } else {
          transport = network.endpoint(worker)
        }
        // Worker names were validated when the scenario was loaded.
        guard
          let bus = try? MessageBus(
            name: worker, transport: transport, clock: clock, configuration: config, defects: defects)
        else { continue }
        busesBox.withLock { $0[worker] = bus }
      }
    }
    self.relay = relay
    startupFailure = failure ?? relayFailure
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
    if let hello = adapters?.hello {
      let missing = Self.capabilitiesNeeded(by: scenario).subtracting(hello.capabilities).sorted()
      if !missing.isEmpty {
        return
          "UNSUPPORTED: \(hello.name) does not declare \(missing.joined(separator: ", ")), which this scenario needs"
      }
    }
    // In process, the harness's allocator, less what the harness itself holds; through
    // adapters, the implementation's own processes.
    let recorder = self.recorder
    let injector = self.faults
    let memory: MemoryMeter
    if let adapters {
      // The first tenth of the streams (or chunks) warm the implementation up: the baseline is
      // taken again after them, and the leak fit reads only the samples after that.
      let streams = scenario.workload.reduce(0) { $0 + $1.streams }
      let chunks = scenario.workload.reduce(0) { sum, g in
        let perStream = scenario.agents.first { $0.name == g.producers }?.methods[g.method]?.chunks ?? 0
        return sum &+ g.streams &* perStream
      }
      memory = MemoryMeter(
        source: adapters.memorySource, enabled: options.measure, warmUpStreams: streams >= 10 ? streams / 10 : 0,
        warmUpChunks: chunks >= 100 ? chunks / 10 : 0
      ) { fresh in adapters.memory(fresh: fresh) }
    } else {
      memory = MemoryMeter(
        threadLocal: manual != nil, enabled: options.measure, excluding: { recorder.bytes + injector.bytes })
    }
    // Scenario time 0 is now, not when the adapter processes began to start (a real-time run
    // through adapters has no bus of its own that read the clock before).
    if adapters != nil, let runClock = clock as? RunClock { runClock.restart() }
    // The wall deadline counts from before the baseline: through a slow adapter, readings take time.
    let started = wall.nanoseconds()
    adapters?.setOverallDeadline(ContinuousClock.now.advanced(by: wallDeadline))
    state.withLock { $0.memory = memory }
    memory.markBaseline()
    state.withLock { $0.wallStart = started }
    scheduleSampling()
    for (index, group) in scenario.workload.enumerated() { startGroup(index, group) }
    for action in scenario.actions {
      _ = clock.schedule(at: Nanos.from(ms: action.atMs)) { [self] in
        switch action.kind {
        case .dispose(let agent):
          for worker in scenario.workers(agent) {
            recorder.record(.dispose(recorder.workerId(worker)), at: clock.nanoseconds())
            buses[worker]?.dispose()
          }
        case .disconnect(let agent):
          for worker in scenario.workers(agent) {
            recorder.record(.disconnected(recorder.workerId(worker)), at: clock.nanoseconds())
            relay?.disconnect(worker)
          }
        }
      }
    }
    let deadline = Nanos.from(ms: scenario.time.deadlineMs)
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
        if steps & 63 == 0 && wall.nanoseconds() > wallLimit {
          problem = "wall-clock deadline of \(wallDeadline) passed with \(openCount) streams open"
          break
        }
        if let failure = adapters?.failure.withLock({ $0 }) {
          problem = failure
          break
        }
        if steps & 63 == 0 && options.cancelled() {
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
        if let failure = adapters?.failure.withLock({ $0 }) {
          problem = failure
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
    // An interrupted run or one out of wall-clock time does not settle: it stops now.
    if options.cancelled() || wall.nanoseconds() > wallLimit || adapters?.failure.withLock({ $0 }) != nil {
      state.withLock { $0.stopSampling = true }
    } else {
      settle(wallLimit: wallLimit)
    }
    // A run out of wall-clock time takes no more readings (through an adapter, each is an operation).
    if wall.nanoseconds() <= wallLimit && !options.cancelled() { memory.markEnd() }
    // Real time through adapters: the harness's timers stop, and what its queue was doing ends,
    // before the history is taken.
    if adapters != nil, let runClock = clock as? RunClock { runClock.stop() }
    return problem
  }

  /// After the last terminal callback: let what is due now run, and one more sweep pass, so
  /// that late callbacks (which would break KSP-4.2) and leftover entries show.
  func settle(wallLimit: Int64) {
    if let manual {
      let horizon = manual.nanoseconds() &+ sweepNanos
      var steps = 0
      while steps < 1_000_000 && manual.runNext(notAfter: horizon) {
        steps += 1
        if steps & 63 == 0 && (wall.nanoseconds() > wallLimit || options.cancelled()) { break }
      }
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
      // The implementation's memory is always measured: its heap where it reports it (the
      // `memory` capability), its processes' resident size otherwise.
      capabilities = Set(hello.capabilities.compactMap(Capability.init(rawValue:)))
      capabilities.insert(.memory)
    }
    if !options.measure { capabilities.remove(.memory) }
    return recorder.finish(
      stats: readings, capabilities: capabilities, endedAt: clock.nanoseconds(), complete: complete, digests: digests)
  }

  var isDone: Bool { state.withLock { $0.done } }
  var openCount: Int { state.withLock { s in s.opened - s.completed + (s.totalStreams - s.opened) } }

}
