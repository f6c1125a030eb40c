import Foundation
import Histogram
import KenshoProtocol
public import KenshoScenario
public import KenshoVerdict
import Synchronization

/// Runs scenarios against the reference bus and judges them.
public struct ScenarioRunner: Sendable {
  /// Overrides every scenario's seed.
  public var seed: UInt64?
  /// Wall-clock time a scenario may take before it is stopped with verdict `error`.
  public var wallDeadline: Duration
  public var options: RunOptions

  public init(seed: UInt64? = nil, wallDeadline: Duration = .seconds(300), options: RunOptions = RunOptions()) {
    self.seed = seed
    self.wallDeadline = wallDeadline
    self.options = options
  }

  /// How long past its wall-clock deadline a scenario may take before the watchdog gives up on
  /// it (a bus that never returns from a delivery cannot look at the clock).
  public static let watchdogGrace: Duration = .seconds(5)

  /// Runs one scenario to its verdict. Never throws and never hangs: a run that cannot finish
  /// has verdict `error` and says why. The run happens on a thread of its own, watched: a bus
  /// that never returns is abandoned there (its adapter processes killed) once the wall-clock
  /// deadline and ``watchdogGrace`` have passed, and the result says so.
  ///
  /// `progress`, when given, is called on the calling thread about every `interval` while the
  /// scenario runs, with how far it got.
  public func run(
    _ scenario: Scenario, every interval: Duration = .milliseconds(250),
    progress: ((ScenarioProgress) -> Void)? = nil
  ) -> ScenarioResult {
    let result = Slot<ScenarioResult>()
    let current = Slot<ReferenceRun>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread { [self] in
      let r = runHere(scenario, current: current)
      result.value = r
      done.signal()
    }
    thread.stackSize = 64 << 20
    thread.start()
    let started = DispatchTime.now()
    let limit = started + .nanoseconds(Int(clamping: (wallDeadline + Self.watchdogGrace).nanoseconds))
    let tick = DispatchTimeInterval.nanoseconds(Int(clamping: max(interval, .milliseconds(10)).nanoseconds))
    let footprint = scenario.footprint
    while true {
      let next = progress == nil ? limit : min(limit, DispatchTime.now() + tick)
      if done.wait(timeout: next) == .success, let r = result.value { return r }
      if DispatchTime.now() >= limit { break }
      if let progress {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        var p = ScenarioProgress(
          wallSeconds: elapsed, streamsTotal: footprint.streams,
          chunksPlanned: footprint.chunks == Int.max ? nil : footprint.chunks)
        if let run = current.value {
          run.state.withLock { s in
            p.streamsCompleted = s.completed
            p.chunksDelivered = s.delivered
          }
        }
        progress(p)
      }
    }
    current.value?.adapters?.killAll()
    current.value?.relay?.close()  // a relay it started must not outlive the run
    let seed = self.seed ?? scenario.seed
    let text =
      "deadline exceeded: the run did not return within its wall-clock deadline of \(wallDeadline) plus \(Self.watchdogGrace) (a bus that never returns from a delivery); abandoned"
    let check = CheckResult(
      name: "completion", rule: "HARNESS", level: .harness, verdict: .error,
      expected: "every stream terminal before the deadline", observed: text)
    return ScenarioResult(
      name: scenario.name, file: scenario.file, description: scenario.description, seed: seed,
      timeMode: scenario.time.mode.rawValue, verdict: .error, checks: [check], metrics: Metrics(), samples: [],
      error: text)
  }

  func runHere(_ scenario: Scenario, current: Slot<ReferenceRun>) -> ScenarioResult {
    let seed = self.seed ?? scenario.seed
    let run = ReferenceRun(scenario: scenario, seed: seed, options: options)
    current.value = run
    var problem = run.execute(wallDeadline: wallDeadline)
    let metrics = Self.metrics(run)
    var history = run.history(complete: problem == nil)
    if let relay = run.relay {
      // The relay's own rules, probed once the workload is over (if it ran); then the relay goes.
      let ran = run.startupFailure == nil && !(problem ?? "").hasPrefix("UNSUPPORTED")
      if scenario.network.probe && !options.cancelled() && ran {
        history.relay = relay.probe()
      }
    }
    // What an implementation does wrong after the workload (a failed or missing stats answer,
    // a dispose or shutdown it does not honour) is an error too, never a pass.
    var adapterFailed = run.startupFailure != nil
    let record = RunRecord(history: history, metrics: metrics)
    var checks = scenario.expect.map { Judge.judge($0, record) }
    let leakFailed = checks.contains {
      ($0.name == Expectation.Kind.noLeak(maxBytesPerStream: nil, maxBytesPerChunk: nil).name
        || ($0.name == Expectation.Kind.memoryReturns(maxBytes: 0).name && run.adapters != nil)) && $0.verdict == .fail
    }
    // The evidence of a leak, taken while the leaked objects are still alive: a heap profile of
    // the reference, heap snapshots of an implementation's processes.
    var profile: String?
    if leakFailed {
      profile =
        run.adapters.map { $0.heapSnapshots(scenario: scenario.name, into: options.profileDirectory) }
        ?? HeapProfile.dump(scenario: scenario.name, into: options.profileDirectory)
    }
    if let host = run.adapters {
      host.stopOpening()
      for bus in run.buses.values { bus.dispose() }
      let shutdownFailure = host.shutdown()
      if let failure = host.failure.withLock({ $0 }) ?? shutdownFailure {
        adapterFailed = true
        if problem == nil || !(problem ?? "").hasPrefix("UNSUPPORTED") { problem = failure }
      }
    }
    if let problem, problem.hasPrefix("UNSUPPORTED") {
      checks = checks.map { c in
        var u = c
        u.verdict = .unsupported
        u.observed = "not supported"
        u.detail = String(problem.dropFirst("UNSUPPORTED: ".count))
        u.counterexample = nil
        return u
      }
    } else if let problem, adapterFailed {
      // The implementation misbehaved: its run says nothing about the scenario's rules.
      checks = [
        CheckResult(
          name: "adapter", rule: "ADAPTER", level: .harness, verdict: .error,
          expected: "an implementation that follows kensho-adapter/1", observed: problem)
      ]
    } else if let problem {
      // A run that stopped early still proves what it saw fail; without a failure, it is an error.
      let failed = checks.contains { $0.verdict == .fail }
      checks.insert(
        CheckResult(
          name: "completion", rule: "HARNESS", level: .harness, verdict: failed ? .untested : .error,
          expected: "every stream terminal before the deadline", observed: problem,
          detail: failed ? "the failures below were seen before the run stopped" : nil), at: 0)
    }
    if run.adapters == nil { for bus in run.buses.values { bus.dispose() } }
    run.relay?.close()
    let verdict = checks.map(\.verdict).max() ?? .pass
    let (samples, histograms) = run.state.withLock { s in
      (
        s.samples,
        Self.hgrm([
          "chunk-latency": s.latency, "chunk-latency-corrected": s.latencyCorrected,
          "time-to-first-chunk": s.firstChunk, "stream-completion": s.completion,
        ])
      )
    }
    var result = ScenarioResult(
      name: scenario.name, file: scenario.file, description: scenario.description, seed: seed,
      timeMode: scenario.time.mode.rawValue, verdict: verdict, checks: checks, metrics: metrics, samples: samples,
      error: problem)
    // What the report shows of the history: bounded, whatever the run's length.
    result.wireLog = WireLog.excerpt(record, checks: checks)
    result.histograms = histograms
    result.findings = Self.findings(scenario, metrics, inboxes: run.slow.maxDepths)
    result.heapProfile = profile
    return result
  }

  /// What the report should point out even when no check fails.
  static func findings(_ scenario: Scenario, _ metrics: Metrics, inboxes: [String: Int]) -> [Finding] {
    var out: [Finding] = []
    for (worker, depth) in inboxes.sorted(by: { $0.key < $1.key }) {
      // What flow control allows to wait at once: each concurrent stream's window, plus its
      // request, end and a grant in flight, plus slack.
      let groups = scenario.workload.filter { scenario.workers($0.consumers).contains(worker) }
      let windowed = groups.filter { $0.creditWindow != nil }
      let allowed = windowed.reduce(16) { sum, g in
        let concurrent = Swift.min(g.concurrency ?? g.streams, g.streams)
        return sum + concurrent * ((g.creditWindow ?? 0) + 3)
      }
      if windowed.isEmpty && depth > 16 {
        out.append(
          Finding(
            kind: .unboundedBuffering, worker: worker, value: depth,
            text: "unbounded buffering: \(depth) messages waited at once for slow consumer \(worker) (no flow control)")
        )
      } else if !windowed.isEmpty && depth > allowed {
        out.append(
          Finding(
            kind: .unboundedBuffering, worker: worker, value: depth,
            text:
              "unbounded buffering: \(depth) messages waited at once for slow consumer \(worker), more than its streams' credit windows allow (\(allowed))"
          ))
      }
    }
    if let peak = metrics.peakBytes, let retained = metrics.retainedBytes, peak > 64 << 20 {
      out.append(
        Finding(
          kind: .highPeakMemory, value: peak,
          text: "peak memory \(peak >> 20) MiB above baseline during the run (\(retained) B retained after)"))
    }
    return out
  }

  /// What each histogram measures, for the header of its `.hgrm` file.
  static let histogramMeaning: [String: String] = [
    "chunk-latency": "per-chunk latency on the wall clock, from emit to onChunk",
    "chunk-latency-corrected":
      "per-chunk latency in scenario time, from when each chunk was due to onChunk (corrected for coordinated omission)",
    "time-to-first-chunk": "scenario time from when each stream was due to open to its first chunk",
    "stream-completion": "scenario time from when each stream was due to open to its terminal callback",
  ]

  /// Histograms in `.hgrm` form, values in microseconds, each after a header of `#` lines that
  /// states the unit and what was measured. Leaves out the empty ones and those whose every
  /// value is zero (a virtual-time run without delays, a closed model's corrected latency):
  /// such a file has no distribution to plot; the JSON report keeps their summaries.
  static func hgrm(_ histograms: [String: Histogram<UInt64>]) -> [String: String] {
    var out: [String: String] = [:]
    for (name, h) in histograms where h.totalCount > 0 && h.max > 0 {
      var text = "# kensho-bench \(name): \(histogramMeaning[name] ?? name)\n"
      text += "# unit: microseconds (µs); Value is in µs, recorded in ns (outputValueUnitScalingRatio 1000)\n"
      h.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1_000)
      out[name] = text
    }
    return out
  }

  static func metrics(_ run: ReferenceRun) -> Metrics {
    let memory = run.state.withLock { $0.memory }
    let faultHits = run.faults.hits
    let inboxDepths = run.slow.maxDepths
    var dropped: [String: Int] = [:]
    var failures = 0
    for bus in run.buses.values {
      let stats = bus.stats
      for (reason, n) in stats.dropped { dropped[reason.description, default: 0] += n }
      failures += stats.callbackFailures
    }
    return run.state.withLock { s in
      var m = Metrics()
      m.streamsOpened = s.opened
      m.streamsCompleted = s.completed
      m.chunksEmitted = s.emitted
      m.chunksDelivered = s.delivered
      m.bytesDelivered = s.bytesDelivered
      m.wallSeconds = Double(max(0, s.wallEnd - s.wallStart)) / 1e9
      m.scenarioMs = Double(s.scenarioEnd) / 1e6
      if m.wallSeconds > 0 {
        m.chunksPerSecond = Double(s.delivered) / m.wallSeconds
        m.bytesPerSecond = Double(s.bytesDelivered) / m.wallSeconds
      }
      m.chunkLatency = summary(s.latency)
      m.chunkLatencyCorrected = summary(s.latencyCorrected)
      m.timeToFirstChunk = summary(s.firstChunk)
      m.streamCompletion = summary(s.completion)
      if s.latency.totalCount > 0 {
        m.latencyCurve = s.latency.percentiles(ticksPerHalfDistance: 4).prefix(200).map {
          PercentilePoint(percentile: $0.percentile, valueUs: Double($0.value) / 1_000)
        }
      }
      if let busiest = s.samples.max(by: { $0.activeStreams < $1.activeStreams }), busiest.activeStreams > 0,
        let allocated = busiest.allocated
      {
        m.bytesPerOpenStream = Double(allocated) / Double(busiest.activeStreams)
      }
      // The leak fit reads the samples after the warm-up (their baseline is the same), and of
      // those the later half of the work (GrowthFit).
      let warm = s.samples.filter { $0.t >= s.warmSamplesFromMs ?? .infinity }
      let reading = { (x: Sample, work: Int) in
        x.allocated.map { GrowthFit.Reading(work: Double(work), open: Double(x.openStreams ?? 0), bytes: Double($0)) }
      }
      m.growthPerStreamFit = GrowthFit.laterHalf(warm.compactMap { reading($0, $0.streamsCompleted) })
      m.growthPerChunkFit = GrowthFit.laterHalf(warm.compactMap { reading($0, $0.chunksDelivered) })
      m.growthPerStream = m.growthPerStreamFit?.slope
      m.growthPerChunk = m.growthPerChunkFit?.slope
      if let memory, memory.available {
        m.retainedBytes = memory.retained
        m.peakBytes = memory.peak
        m.memorySource = memory.source
        m.memoryNoiseFloorBytes = memory.noiseFloor
      }
      m.messages = Dictionary(uniqueKeysWithValues: s.wire.map { ($0.key.rawValue, $0.value) })
      m.dropped = dropped
      m.callbackFailures = failures
      m.faultsInjected = faultHits
      m.maxInboxDepth = inboxDepths.values.max()
      return m
    }
  }

  /// Checks an adapter command before a run: its words (``ShellWords``), its program (found and
  /// executable), and the handshake, each within `deadline`. Returns the name and version the
  /// implementation gives, or one sentence saying what is wrong.
  public static func checkAdapter(_ command: String, deadline: Duration) -> Result<String, ShellWords.Problem> {
    let words: [String]
    do throws(ShellWords.Problem) {
      words = try ShellWords.split(command)
    } catch {
      return .failure(error)
    }
    if case .failure(let problem) = ShellWords.locate(words[0]) { return .failure(problem) }
    let stderr = Mutex("")
    let log: @Sendable (String) -> Void = { text in
      stderr.withLock { all in
        if all.utf8.count < 16 << 10 { all += text }
      }
    }
    do throws(AdapterFailure) {
      let process = try AdapterProcess(command: command, label: "the implementation", deadline: deadline, log: log)
      defer { process.shutdown() }
      let hello = try process.hello()
      return .success("\(hello.name) \(hello.version)")
    } catch {
      // The reason, then what it wrote to stderr (its first lines say why, most often).
      let reason = error.description.components(separatedBy: "; stderr: ").first ?? error.description
      let prefix = "[the implementation] "
      let lines = stderr.withLock { $0 }.split(separator: "\n")
        .map { $0.hasPrefix(prefix) ? $0.dropFirst(prefix.count) : $0 }
        .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
      var text = "no adapter handshake (\(AdapterProcess.protocolVersion)): \(reason)"
      for line in lines.prefix(8) { text += "\n  stderr: " + SafeText.escape(String(line.prefix(300))) }
      if lines.count > 8 { text += "\n  stderr: … (\(lines.count - 8) more lines)" }
      return .failure(ShellWords.Problem(description: text))
    }
  }

  static func summary(_ h: Histogram<UInt64>) -> LatencySummary? {
    guard h.totalCount > 0 else { return nil }
    let us = { (v: UInt64) in Double(v) / 1_000 }
    return LatencySummary(
      count: Int(h.totalCount), p50: us(h.valueAtPercentile(50)), p90: us(h.valueAtPercentile(90)),
      p99: us(h.valueAtPercentile(99)), p999: us(h.valueAtPercentile(99.9)), max: us(h.max), mean: h.mean / 1_000)
  }
}

/// How far a running scenario got.
public struct ScenarioProgress: Sendable, Hashable {
  /// Wall-clock seconds since the scenario started.
  public var wallSeconds: Double
  public var streamsCompleted = 0
  public var streamsTotal: Int
  public var chunksDelivered = 0
  /// The chunks the producers' scripts emit in all (an upper bound: cancels, faults and crashes
  /// deliver fewer); nil when too many to count.
  public var chunksPlanned: Int?
}

/// One value handed between threads.
final class Slot<T: Sendable>: Sendable {
  private let box = Mutex<T?>(nil)
  var value: T? {
    get { box.withLock { $0 } }
    set { box.withLock { $0 = newValue } }
  }
}
