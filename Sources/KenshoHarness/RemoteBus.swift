import Foundation
import KenshoAdapterProtocol
import KenshoBus
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// The implementations under test behind adapter processes: one process per agent of the
/// scenario (a group of workers shares its agent's process), joined by the harness network.
///
/// Messages an implementation sends come out as `send` events and enter the harness network,
/// which validates, faults and routes them like any other; messages for a hosted worker go in
/// as `deliver` operations.
///
/// In virtual time the harness advances each process's clock to the deadline of its next timer,
/// as the process reports it, one operation at a time. In real time (the `real_time`
/// capability) each process runs on its own clock and operations are pipelined: events come
/// whenever they happen and are handled, with the acks of pipelined operations and the
/// harness's own timers, on one serial queue (`executor`), so that the harness's side of the
/// run is as sequential as in virtual time.
final class AdapterHost: Sendable {
  let hello: AdapterProcess.Hello
  private let processes: [String: AdapterProcess]  // by agent name
  private let agentOf: [String: String]  // worker → agent
  private let hostedWith: [String: Set<String>]  // worker → the workers of its agent
  private let busesBox = Mutex<[String: RemoteBus]>([:])
  private let scheduled = Mutex<[String: Int64]>([:])
  /// Agents whose process the harness killed (a crash): their workers take no operations.
  private let dead = Mutex<Set<String>>([])
  let network: LocalNetwork
  let clock: any BusClock
  /// The first failure of any process; the run stops with it.
  let failure = Mutex<String?>(nil)
  let recorder: HistoryRecorder
  /// Real time: the serial queue of the harness's side of the run; nil in virtual time.
  let executor: DispatchQueue?
  /// The buses talk through a relay (relay mode): the harness sees their wire there, and a
  /// `send` event is a lie.
  let onRelay: Bool
  /// Whether the hot path reads `send` and callback lines (``HotLine``).
  private let hotLines: Bool
  /// The run is over: operations are no longer sent, and what fails no longer counts.
  private let closing = Atomic<Bool>(false)
  /// Agents whose process is being shut down: what fails there then is the shutdown's to report.
  private let shuttingDown = Mutex<Set<String>>([])
  /// Marks the executor, so that an operation written from it first writes the deliveries
  /// already routed (they came first).
  private static let onExecutor = DispatchSpecificKey<Bool>()

  init(
    command: String, scenario: Scenario, seed: UInt64, network: LocalNetwork, clock: any BusClock,
    config: BusConfiguration, deadline: Duration, log: (@Sendable (String) -> Void)?, recorder: HistoryRecorder,
    executor: DispatchQueue? = nil, relay: AdapterConfiguration.Relay? = nil, hotLines: Bool = true
  ) throws(AdapterFailure) {
    self.hotLines = hotLines
    self.network = network
    self.onRelay = relay != nil
    self.clock = clock
    self.recorder = recorder
    self.executor = executor
    let time: AdapterConfiguration.Time = executor == nil ? .virtual : .real
    var processes: [String: AdapterProcess] = [:]
    var agentOf: [String: String] = [:]
    var hello: AdapterProcess.Hello?
    for agent in scenario.agents {
      // One process per agent; one per worker where the scenario crashes a worker of a group,
      // so that a crash (a SIGKILL of its process) removes exactly that worker, as in process.
      let crashes = agent.methods.values.contains { if case .crash = $0.finish { true } else { false } }
      let hosts: [(key: String, workers: [String])] =
        crashes && agent.workerNames.count > 1
        ? agent.workerNames.map { ($0, [$0]) } : [(agent.name, agent.workerNames)]
      for host in hosts {
        let process = try AdapterProcess(
          command: command, label: "implementation for \(host.key)", deadline: deadline, log: log)
        processes[host.key] = process
        let h = try process.hello()
        hello = hello ?? h
        let needed = time == .real ? "real_time" : "virtual_time"
        guard h.capabilities.contains(needed) else {
          throw AdapterFailure(
            description:
              "UNSUPPORTED: \(h.name) has no \(needed) capability, which a \(time.rawValue)-time scenario needs")
        }
        if relay != nil && !h.capabilities.contains("relay") {
          throw AdapterFailure(
            description: "UNSUPPORTED: \(h.name) has no relay capability, which a relay scenario needs")
        }
        let configure = AdapterConfiguration(
          workers: host.workers, streamTimeoutMs: Double(config.streamTimeout.nanoseconds) / 1e6,
          sweepIntervalMs: Double(config.sweepInterval.nanoseconds) / 1e6, seed: Int64(bitPattern: seed),
          creditWindow: config.flowControlWindow, time: time, relay: relay)
        _ = try process.perform(.configure(configure))
        for worker in host.workers { agentOf[worker] = host.key }
      }
    }
    self.processes = processes
    self.agentOf = agentOf
    let hostedBy = Dictionary(grouping: agentOf.keys, by: { agentOf[$0] ?? "" }).mapValues(Set.init)
    hostedWith = agentOf.mapValues { hostedBy[$0] ?? [] }
    self.hello = hello ?? AdapterProcess.Hello(name: "unnamed", version: "?", capabilities: [])
  }

  /// Real time: every process's lines are read as they come, their events handled on the executor.
  private func startPipelines() {
    guard let executor else { return }
    executor.setSpecific(key: Self.onExecutor, value: true)
    for (key, process) in processes {
      guard let worker = agentOf.first(where: { $0.value == key })?.key else { continue }
      process.startPipelining(
        hotLines: hotLines,
        onEvents: { [weak self] events in
          guard let self else { return }
          // Events the executor has not handled yet are bounded: an implementation that writes
          // them faster than the harness handles them for long is flooding it.
          let waiting = self.eventsWaiting.wrappingAdd(events.count, ordering: .relaxed).newValue
          guard waiting <= Self.maxEventsWaiting else {
            if waiting - events.count <= Self.maxEventsWaiting {
              self.fail(
                worker,
                "\(process.label) wrote more than \(Self.maxEventsWaiting) events faster than the harness could handle them (flooding)"
              )
            }
            self.eventsWaiting.subtract(events.count, ordering: .relaxed)
            return
          }
          self.enqueue(executor, .events(worker, events))
        },
        onFailure: { [weak self] failure in self?.record(failure, of: key) })
    }
  }

  /// Real time: what the line threads hand the executor (events, and acks' continuations), in
  /// the order they handed it, and whether a block to drain it is on the executor. One block
  /// drains what has gathered, so that a busy run does not pay a dispatch and a wake-up per
  /// line; it takes one batch at a time, so that the executor's timers still get their turn.
  private let inbox = Mutex<(work: [Inbound], scheduled: Bool)>(([], false))

  /// What a line thread hands the executor: the events of an agent's process read together
  /// (no closure to allocate a line), or an ack's continuation.
  private enum Inbound: Sendable {
    case events(String, [AdapterProcess.PipelinedEvent])
    case run(@Sendable () -> Void)
  }

  private func enqueue(_ executor: DispatchQueue, _ work: Inbound) {
    let schedule = inbox.withLock { inbox in
      inbox.work.append(work)
      defer { inbox.scheduled = true }
      return !inbox.scheduled
    }
    if schedule { executor.async { [weak self] in self?.drainInbox(executor) } }
  }

  private func drainInbox(_ executor: DispatchQueue) {
    let batch = inbox.withLock { inbox in
      var batch: [Inbound] = []
      batch.reserveCapacity(inbox.work.count)
      swap(&batch, &inbox.work)
      return batch
    }
    for work in batch {
      switch work {
      case .events(let worker, let events):
        eventsWaiting.subtract(events.count, ordering: .relaxed)
        for event in events {
          switch event {
          case .event(let event): handle(worker, event)
          case .sent(let named, let message): handle(worker, sent: message, by: named)
          }
        }
      case .run(let work): work()
      }
    }
    let more = inbox.withLock { inbox in
      inbox.scheduled = !inbox.work.isEmpty
      return inbox.scheduled
    }
    if more { executor.async { [weak self] in self?.drainInbox(executor) } }
  }

  /// Real time: events read and not yet handled by the executor.
  private let eventsWaiting = Atomic<Int>(0)
  /// More waiting than this is a flood. Events answer the harness's own operations, whose
  /// number in flight is bounded (a producer's batch, a delivery's messages), so a conforming
  /// implementation stays far below.
  static let maxEventsWaiting = 1_000_000

  /// Keeps the first failure of a process the harness did not kill, unless the run is over.
  private func record(_ failure: AdapterFailure, of agent: String) {
    guard !shuttingDown.withLock({ $0.contains(agent) }), !dead.withLock({ $0.contains(agent) }) else { return }
    self.failure.withLock { if $0 == nil { $0 = failure.description } }
  }

  /// Real time: writes `operation` without waiting; `then` runs on the executor with its ack,
  /// or nil when it failed (the failure is kept and stops the run).
  func submit(
    _ operation: AdapterOperation, line: AdapterProcess.Line? = nil, then: (@Sendable (AdapterAck?) -> Void)? = nil
  ) {
    guard let executor, failure.withLock({ $0 == nil }), !closing.load(ordering: .relaxed),
      let worker = operation.worker, let agent = agentOf[worker], let process = processes[agent],
      !dead.withLock({ $0.contains(agent) })
    else {
      then?(nil)
      return
    }
    flushRoutedFirst(operation)
    process.submit(operation, line: line) { [weak self] result in
      guard let self else { return }
      self.enqueue(
        executor,
        .run {
          switch result {
          case .success(let ack): then?(ack)
          case .failure(let failure):
            self.record(failure, of: agent)
            then?(nil)
          }
        })
    }
  }

  /// The remote bus of every worker, attached to the network.
  func makeBuses() -> [String: RemoteBus] {
    var buses: [String: RemoteBus] = [:]
    for (worker, agent) in agentOf {
      guard let process = processes[agent] else { continue }
      let bus = RemoteBus(worker: worker, process: process, host: self)
      buses[worker] = bus
      network.endpoint(worker).start(receiver: bus)
    }
    busesBox.withLock { $0 = buses }
    startPipelines()
    return buses
  }

  /// Runs an operation on the process of its worker and handles what it caused. A failure is
  /// kept and stops the run.
  @discardableResult
  func perform(_ operation: AdapterOperation) -> AdapterAck? {
    if case .call = operation, closing.load(ordering: .relaxed) { return nil }
    guard failure.withLock({ $0 == nil }), let worker = operation.worker, let agent = agentOf[worker],
      let process = processes[agent], !dead.withLock({ $0.contains(agent) })
    else { return nil }
    flushRoutedFirst(operation)
    do {
      let (events, ack) = try process.perform(operation)
      // In real time the process keeps its own timers, and its events come on their own.
      if executor == nil, let next = ack.nextTimerMs {
        // A timer deadline in scenario time the clock can represent with room to spare.
        guard next <= Self.maxTimerMs else {
          throw AdapterFailure(
            description:
              "\(process.label) answered \(operation.name) with nextTimerMs \(next), expected null or a number of ms from 0 to \(Int(Self.maxTimerMs))"
          )
        }
        schedule(agent, process, at: Nanos.from(ms: next))
      }
      // The ack's own result first (a stream id must be known before its events), then events.
      handlePending.withLock { $0.append(contentsOf: events.map { (worker, $0) }) }
      return ack
    } catch {
      if !shuttingDown.withLock({ $0.contains(agent) }) && !dead.withLock({ $0.contains(agent) }) {
        failure.withLock { if $0 == nil { $0 = (error as? AdapterFailure)?.description ?? "\(error)" } }
      }
      return nil
    }
  }

  /// The latest timer an adapter may ask for: about 106 days, far below what the clock holds.
  static let maxTimerMs = 9e9

  /// Whether the implementation reports its own heap (the `memory` capability).
  var reportsHeap: Bool { hello.capabilities.contains("memory") }

  /// How ``memory()`` measures, for reports.
  var memorySource: String {
    reportsHeap
      ? "\(hello.name): heap in use after a collection, summed over its processes"
      : "\(hello.name): resident set size of its processes"
  }

  private let lastMemory = Mutex<[String: Int64]>([:])
  /// When the last reading was taken and what it cost: readings are rationed to about a tenth
  /// of the wall time (a reading is an operation per process, and a collection in each).
  private let rationing = Mutex<(at: ContinuousClock.Instant, took: Duration, total: Int64?)?>(nil)

  /// The implementation's memory in bytes, summed over its processes: each one's heap in use
  /// after a collection where the adapter declares `memory` (op `memory`), the resident set of
  /// its process group otherwise. A process that is gone (a crash) counts with its last reading,
  /// so that a crash does not look like memory returned. Nil when a reading failed.
  /// `new` is false for the last reading given again (rationed).
  func memory(fresh: Bool) -> (bytes: Int64, new: Bool)? {
    let started = ContinuousClock.now
    if !fresh, let last = rationing.withLock({ $0 }), let total = last.total,
      started - last.at < max(.milliseconds(20), last.took * 10)
    {
      return (total, false)
    }
    let total = readMemory()
    let took = ContinuousClock.now - started
    rationing.withLock { $0 = (started, took, total) }
    return total.map { ($0, true) }
  }

  /// Heap snapshots of every live process, for a failed leak verdict, written by the processes
  /// themselves (op `heap_snapshot`, optional): the paths and how to open them, or why there
  /// are none. A process that cannot write one is not at fault.
  func heapSnapshots(scenario: String, into directory: String?) -> String {
    let base = directory ?? FileManager.default.temporaryDirectory.path
    let folder = URL(fileURLWithPath: base, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
      .standardizedFileURL
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let safe = { (s: String) in String(s.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) }
    var written: [String] = []
    var refusal: String?
    for (key, process) in processes.sorted(by: { $0.key < $1.key }) where !dead.withLock({ $0.contains(key) }) {
      let path = folder.appendingPathComponent("\(safe(scenario))-\(safe(key)).heapsnapshot").path
      do {
        let (_, ack) = try process.perform(.heapSnapshot(path: path))
        written.append(ack.path ?? path)
      } catch {
        refusal = error.description
        break
      }
    }
    guard !written.isEmpty else {
      return "the implementation wrote no heap snapshot (\(refusal ?? "no process left")); "
        + "an adapter can write one on the optional heap_snapshot operation (docs/ADAPTER-PROTOCOL.md)"
    }
    return "heap snapshots of the implementation: \(written.joined(separator: ", ")); open them in Chrome DevTools "
      + "(Memory, Load profile) and look at what the retained objects are kept by"
  }

  private func readMemory() -> Int64? {
    var total: Int64 = 0
    for (key, process) in processes.sorted(by: { $0.key < $1.key }) {
      let gone = dead.withLock { $0.contains(key) }
      var reading: Int64?
      if !gone {
        if reportsHeap {
          guard let worker = agentOf.first(where: { $0.value == key })?.key,
            let ack = perform(.memory(worker: worker))
          else { return nil }
          // The protocol's declaration bounds it (0 to 1 PiB).
          reading = ack.heapUsedBytes
        } else {
          reading = ProcessMemory.group(process.pid)?.resident
        }
      }
      let value = lastMemory.withLock { last in
        if let reading { last[key] = reading }
        return last[key]
      }
      guard let value else { return nil }
      total += value
    }
    return total
  }

  /// The workers hosted by the process that hosts `worker`.
  func hosted(with worker: String) -> Set<String> {
    hostedWith[worker] ?? []
  }

  /// Ends the run with `text` (the first failure wins) and kills the process that wrote it.
  func fail(_ worker: String, _ text: String) {
    failure.withLock { if $0 == nil { $0 = text } }
    if let agent = agentOf[worker] { processes[agent]?.kill() }
  }

  func label(of worker: String) -> String {
    agentOf[worker].flatMap { processes[$0]?.label } ?? "implementation"
  }

  private let handlePending = Mutex<[(String, AdapterEvent)]>([])

  private struct Deliveries {
    var depth = 0
    var flushing = false
    var pending: [(String, KenshoMessage)] = []
  }

  private let deliveries = Mutex(Deliveries())

  /// Handles the events collected by operations, in order, until none are left; then hands
  /// the messages that arrived meanwhile to their workers.
  func drain() {
    if executor != nil { return }  // real time: events are handled on the executor as they come
    deliveries.withLock { $0.depth += 1 }
    while let (worker, event) = handlePending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
      handle(worker, event)
    }
    let flushNow = deliveries.withLock { d in
      d.depth -= 1
      return d.depth == 0 && !d.flushing && !d.pending.isEmpty
    }
    if flushNow { flushDeliveries() }
  }

  /// A message for `worker`. Messages that arrive while events are being handled go to their
  /// workers together afterwards, one `deliver` each worker, in the order they arrived.
  func deliver(_ message: KenshoMessage, to worker: String) {
    if let executor {
      // Real time: what arrives while the executor is busy goes out together, after it.
      let first = deliveries.withLock { d in
        d.pending.append((worker, message))
        defer { d.flushing = true }
        return !d.flushing
      }
      if first { executor.async { self.flushPipelined() } }
      return
    }
    let now = deliveries.withLock { d in
      d.pending.append((worker, message))
      return d.depth == 0 && !d.flushing
    }
    if now { flushDeliveries() }
  }

  private func flushDeliveries() {
    deliveries.withLock { $0.flushing = true }
    while true {
      let batch = deliveries.withLock { d in
        defer { d.pending = [] }
        return d.pending
      }
      if batch.isEmpty { break }
      var order: [String] = []
      var groups: [String: [JSONValue]] = [:]
      for (worker, message) in batch {
        if groups[worker] == nil { order.append(worker) }
        groups[worker, default: []].append(KenshoCodec.json(message))
      }
      for worker in order {
        perform(.deliver(worker: worker, messages: groups[worker] ?? []))
        drain()
      }
    }
    deliveries.withLock { $0.flushing = false }
  }

  /// Real time, on the executor: messages the network routed before this operation reach their
  /// workers before it does, as the history records them (a cancel delivered, then a chunk
  /// refused), not after it.
  private func flushRoutedFirst(_ operation: AdapterOperation) {
    guard executor != nil, DispatchQueue.getSpecific(key: Self.onExecutor) == true,
      operation.name != "deliver", deliveries.withLock({ !$0.pending.isEmpty })
    else { return }
    flushPipelined()
  }

  /// Real time: the messages waiting, one pipelined `deliver` a worker, in the order they came.
  private func flushPipelined() {
    let batch = deliveries.withLock { d in
      defer {
        d.pending = []
        d.flushing = false
      }
      return d.pending
    }
    var order: [String] = []
    var groups: [String: [KenshoMessage]] = [:]
    for (worker, message) in batch {
      if groups[worker] == nil { order.append(worker) }
      groups[worker, default: []].append(message)
    }
    for worker in order {
      // The line is written from the messages (the hot path), not from their JSON objects.
      let messages = groups[worker] ?? []
      submit(
        .deliver(worker: worker, messages: []),
        line: { id, out throws(JSONText.ParseError) in
          try AdapterOperation.writeDeliver(id: id, worker: worker, messages: messages, into: &out)
        })
    }
  }

  /// The workers of `worker`'s process, when an event it wrote may be handled: the process is
  /// not one the harness killed, and the event names one of its own workers (no impersonation).
  private func admitted(_ worker: String, naming named: String, _ event: String) -> Set<String>? {
    // Real time: what a process wrote before the harness killed it (a crash) is not handled
    // after it, as in virtual time where it would never have been read.
    if executor != nil, dead.withLock({ !$0.isEmpty && agentOf[worker].map($0.contains) == true }) { return nil }
    let hosted = hostedWith[worker] ?? []
    // A process's events name its own worker, nearly always: no lookup for that one.
    guard named == worker || hosted.contains(named) else {
      fail(worker, "\(label(of: worker)) reported \(event) for worker \(Self.brief(named)), which it does not host")
      return nil
    }
    return hosted
  }

  /// Whether a message the process says one of its buses sent may go to the harness's network:
  /// not in relay mode (the relay carries it), and from one of its own workers.
  private func mayRoute(_ worker: String, source: String?, hosted: Set<String>) -> Bool {
    guard !onRelay else {
      fail(worker, "\(label(of: worker)) wrote a send event in relay mode, where its buses send through the relay")
      return false
    }
    if let source, source != worker, !hosted.contains(source) {
      fail(
        worker, "\(label(of: worker)) sent a message with sourceWorker \(Self.brief(source)), a worker it does not host"
      )
      return false
    }
    return true
  }

  /// A `send` the hot path read (``HotLine``): the same as ``handle(_:_:)`` does with it, its
  /// message already decoded and valid as sent.
  private func handle(_ worker: String, sent message: KenshoMessage, by named: String) {
    guard let hosted = admitted(worker, naming: named, "send"),
      mayRoute(worker, source: message.sourceWorker, hosted: hosted)
    else { return }
    network.send(message)
  }

  private func handle(_ worker: String, _ event: AdapterEvent) {
    let named = event.worker ?? worker
    guard let hosted = admitted(worker, naming: named, event.name) else { return }
    let buses = busesBox.withLock { $0 }
    switch event {
    case .send(_, let raw):
      guard mayRoute(worker, source: raw.objectValue?["sourceWorker"]?.stringValue, hosted: hosted) else { return }
      switch KenshoCodec.message(from: raw, mode: .sent) {
      case .success(let m): network.send(m)
      case .failure(let rejection):
        // Still deliverable when only a sender-side rule is broken (KSP-5.3 and friends); the
        // wire recorder flags it under KSP-1.1 as it passes.
        if case .success(let lenient) = KenshoCodec.message(from: raw, mode: .received) {
          network.send(lenient)
        } else {
          recorder.undecodable(from: named, problem: "\(rejection)", at: clock.nanoseconds())
        }
      }
    case .handler(_, let method, let streamId, let args):
      buses[named]?.handlerCalled(method: method, streamId: streamId, args: args)
    case .callback(let kind, _, let streamId, let value):
      guard let streamId else { return }
      buses[named]?.callback(kind, streamId: streamId, value: value)
    case .credit(_, let streamId):
      buses[named]?.creditAvailable(streamId)
    case .log:
      break  // the adapter's own diagnostics; its stderr is the log
    }
  }

  static func brief(_ s: String) -> String {
    let printable = s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : String($0) }.joined()
    return "\"" + (printable.count > 40 ? String(printable.prefix(40)) + "…" : printable) + "\""
  }

  /// Makes sure the harness advances `process`'s clock to its next timer.
  private func schedule(_ agent: String, _ process: AdapterProcess, at deadline: Int64) {
    let isNew: Bool = scheduled.withLock { s in
      if s[agent] == deadline { return false }
      s[agent] = deadline
      return true
    }
    guard isNew, let worker = agentOf.first(where: { $0.value == agent })?.key else { return }
    _ = clock.schedule(at: max(deadline, clock.nanoseconds())) { [self] in
      guard scheduled.withLock({ $0[agent] == deadline }) else { return }
      scheduled.withLock { $0[agent] = nil }
      perform(.advance(worker: worker, toMs: Double(clock.nanoseconds()) / 1e6))
      drain()
    }
  }

  /// Kills the process hosting `worker` (SIGKILL): every worker of that agent is gone.
  func kill(_ worker: String) -> [String] {
    guard let agent = agentOf[worker], let process = processes[agent] else { return [] }
    dead.withLock { _ = $0.insert(agent) }
    process.kill()
    return agentOf.filter { $0.value == agent }.map(\.key)
  }

  /// The run is judged and its buses are about to be disposed: from now on nothing is pipelined
  /// (``closing``), and a stream the workload still opens (a closed model refilling) is refused
  /// here, never sent to a disposed bus.
  func stopOpening() { closing.store(true, ordering: .relaxed) }

  /// Shuts every process down; returns the first thing one did wrong meanwhile, if any.
  func shutdown() -> String? {
    closing.store(true, ordering: .relaxed)
    var first: String?
    for key in processes.keys.sorted() {
      shuttingDown.withLock { _ = $0.insert(key) }
      if let problem = processes[key]?.shutdown(), first == nil { first = problem.description }
    }
    return first
  }

  /// Kills every process of this run at once (the watchdog gave up on it).
  func killAll() {
    for process in processes.values { process.kill() }
  }

  /// Bounds every operation of every process by the scenario's wall-clock deadline.
  func setOverallDeadline(_ instant: ContinuousClock.Instant) {
    for process in processes.values { process.overallDeadline = instant }
  }
}

/// A worker hosted by an implementation under test.
final class RemoteBus: BusUnderTest, TransportReceiver, Sendable {
  struct Stream {
    var callbacks: StreamCallbacks
  }

  let worker: String
  private let process: AdapterProcess
  private unowned let host: AdapterHost
  private let handlers = Mutex<[String: @Sendable (JSONValue, any EmitterUnderTest) -> Void]>([:])
  private let streams = Mutex<[String: StreamCallbacks]>([:])
  private let emitters = Mutex<[String: RemoteEmitter]>([:])

  init(worker: String, process: AdapterProcess, host: AdapterHost) {
    self.worker = worker
    self.process = process
    self.host = host
  }

  func readStats() -> StatsReading {
    guard let ack = host.perform(.stats(worker: worker)), let s = ack.stats else {
      return .failed(host.failure.withLock { $0 } ?? "the stats operation failed")
    }
    // The declaration requires both counts, from 0 to 1 PiB.
    return .read(
      activeStreams: Int(clamping: s["activeStreams"]?.intValue ?? 0),
      emitters: Int(clamping: s["emitters"]?.intValue ?? 0))
  }

  var stats: BusStats {
    let s = host.perform(.stats(worker: worker))?.stats ?? [:]
    var dropped: [DropReason: Int] = [:]
    for (key, value) in s["dropped"]?.objectValue ?? [:] {
      if let reason = DropReason.allCases.first(where: { $0.description == key }), let n = value.intValue {
        dropped[reason] = Int(clamping: n)
      }
    }
    func count(_ key: String) -> Int { Int(clamping: s[key]?.intValue ?? 0) }
    return BusStats(
      activeStreams: count("activeStreams"), emitters: count("emitters"), pendingCalls: 0, dropped: dropped,
      callbackFailures: count("callbackFailures"), received: count("received"), sent: count("sent"))
  }

  func register(
    method: String, throwsAtOnce: SerializedError?,
    handler: @escaping @Sendable (JSONValue, any EmitterUnderTest) -> Void
  ) {
    handlers.withLock { $0[method] = handler }
    host.perform(.register(worker: worker, method: method, throws: throwsAtOnce))
    host.drain()
  }

  func open(
    _ target: String, method: String, args: JSONValue, callbacks: StreamCallbacks, throwing: Set<CallbackKind>,
    traceId: String?, opened: @escaping (String) -> Void
  ) throws -> String {
    // Scenario callbacks that throw must throw inside the implementation (KSP-4.2, 5.4).
    let call = AdapterCall(
      target: target, method: method, args: args, timeoutMs: callbacks.timeout.map { Double($0.nanoseconds) / 1e6 },
      creditWindow: callbacks.creditWindow, traceId: traceId, throwIn: throwing.map(\.rawValue).sorted())
    guard let ack = host.perform(.call(worker: worker, call)), let streamId = ack.streamId else {
      throw BusError.disposed
    }
    streams.withLock { $0[streamId] = callbacks }
    opened(streamId)
    host.drain()
    return streamId
  }

  func cancel(_ streamId: String, reason: JSONValue) -> Bool {
    let ack = host.perform(.cancel(worker: worker, streamId: streamId, reason: reason))
    host.drain()
    return ack?.cancelled ?? false
  }

  func dispose() {
    host.perform(.dispose(worker: worker))
    host.drain()
  }

  // TransportReceiver: the harness network delivers to this worker (batched by the host).
  func receive(_ message: KenshoMessage) {
    host.deliver(message, to: worker)
  }

  func peerDown(_ worker: String) {
    host.perform(.peerDown(worker: self.worker, peer: worker))
    host.drain()
  }

  // Events from the implementation.

  func handlerCalled(method: String, streamId: String, args: JSONValue) {
    guard let handler = handlers.withLock({ $0[method] }) else { return }
    let emitter = RemoteEmitter(streamId: streamId, worker: worker, host: host)
    emitters.withLock { $0[streamId] = emitter }
    handler(args, emitter)
  }

  func callback(_ kind: CallbackEvent, streamId: String, value: JSONValue) {
    guard let callbacks = streams.withLock({ $0[streamId] }) else { return }
    switch kind {
    case .chunk: try? callbacks.onChunk(value)
    case .end: try? callbacks.onEnd(value)
    case .error:
      let error = try? KenshoCodec.serializedError(value, path: "$.error")
      try? callbacks.onError(error ?? SerializedError(message: "error without error"))
    }
  }

  func creditAvailable(_ streamId: String) {
    emitters.withLock { $0[streamId] }?.creditArrived()
  }
}

/// A producer's emitter inside an implementation under test.
final class RemoteEmitter: EmitterUnderTest, Sendable {
  let streamId: String
  private let worker: String
  private unowned let host: AdapterHost
  private let creditHandler = Mutex<(@Sendable () -> Void)?>(nil)

  init(streamId: String, worker: String, host: AdapterHost) {
    self.streamId = streamId
    self.worker = worker
    self.host = host
  }

  private func emit(_ operation: AdapterOperation) throws(EmitterError) {
    let ack = host.perform(operation)
    host.drain()
    switch ack?.emitResult {
    case .ok?: return
    case .noCredit?: throw .noCredit
    case .cancelled?: throw .cancelled
    case .closed?, nil: throw .closed
    }
  }

  func chunk(_ data: JSONValue) throws(EmitterError) {
    try emit(.chunk(worker: worker, streamId: streamId, data: data))
  }
  func end(_ summary: JSONValue) throws(EmitterError) {
    try emit(.end(worker: worker, streamId: streamId, summary: summary))
  }
  func error(_ error: SerializedError) throws(EmitterError) {
    try emit(.error(worker: worker, streamId: streamId, error: error))
  }

  func onCredit(_ handler: @escaping @Sendable () -> Void) {
    // Credit that came while the refused operation was still being handled is not lost.
    let now = creditHandler.withLock { h -> Bool in
      if pendingCredit.withLock({ p in
        defer { p = false }
        return p
      }) {
        return true
      }
      h = handler
      return false
    }
    if now { handler() }
  }

  private let pendingCredit = Mutex(false)

  var prefersBatches: Bool { true }

  func chunks(_ batch: [JSONValue], then: @escaping @Sendable ((sent: Int, refusal: EmitterError?)) -> Void) {
    let operation = AdapterOperation.chunks(worker: worker, streamId: streamId, data: batch)
    guard host.executor != nil else {
      let ack = host.perform(operation)
      host.drain()
      then(outcome(of: ack, batch: batch.count))
      return
    }
    // Real time: pipelined; the producer carries on when the ack comes.
    let count = batch.count
    host.submit(operation, then: { [self] ack in then(outcome(of: ack, batch: count)) })
  }

  private func outcome(of ack: AdapterAck?, batch: Int) -> (sent: Int, refusal: EmitterError?) {
    let reported = ack?.sent ?? 0
    guard reported <= batch else {
      host.fail(worker, "\(host.label(of: worker)) acknowledged chunks with sent \(reported) for a batch of \(batch)")
      return (0, .closed)
    }
    let sent = reported
    switch ack?.emitResult {
    case .ok?: return (sent, nil)
    case .noCredit?: return (sent, .noCredit)
    case .cancelled?: return (sent, .cancelled)
    case .closed?, nil: return (sent, .closed)
    }
  }

  func creditArrived() {
    let handler = creditHandler.withLock { h in
      defer { h = nil }
      if h == nil { pendingCredit.withLock { $0 = true } }
      return h
    }
    handler?()
  }
}
