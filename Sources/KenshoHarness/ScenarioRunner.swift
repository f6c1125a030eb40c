import Foundation
import Histogram
import KenshoProtocol
public import KenshoScenario

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

  /// Runs one scenario to its verdict. Never throws: a run that cannot finish has verdict
  /// `error` and says why.
  public func run(_ scenario: Scenario) -> ScenarioResult {
    let seed = self.seed ?? scenario.seed
    let run = ReferenceRun(scenario: scenario, seed: seed, options: options)
    let problem = run.execute(wallDeadline: wallDeadline)
    let metrics = Self.metrics(run)
    var checks = scenario.expect.map { Judge(run: run, metrics: metrics).check($0) }
    if let problem, problem.hasPrefix("UNSUPPORTED") {
      checks = checks.map { c in
        var u = c
        u.verdict = .unsupported
        u.observed = problem
        return u
      }
    } else if let problem, run.startupFailure != nil || run.adapters?.failure.withLock({ $0 }) != nil {
      // The implementation misbehaved: its run says nothing about the scenario's rules.
      checks = [
        CheckResult(
          name: "adapter", rule: "ADAPTER", level: "MUST", verdict: .error,
          expected: "an implementation that follows kensho-adapter/1", observed: problem)
      ]
    } else if let problem {
      checks.insert(
        CheckResult(
          name: "completion", rule: "HARNESS", level: "MUST", verdict: .error,
          expected: "every stream terminal before the deadline", observed: problem), at: 0)
    }
    let leakFailed = zip(scenario.expect, checks).contains { e, c in
      if case .noLeak = e.kind { return c.verdict == .fail }
      return false
    }
    // Dump the heap while the leaked objects are still alive.
    let profile = leakFailed ? HeapProfile.dump(scenario: scenario.name, into: options.profileDirectory) : nil
    for bus in run.buses.values { bus.dispose() }
    run.adapters?.shutdown()
    let verdict = checks.map(\.verdict).max() ?? .pass
    let (samples, trace, histograms) = run.state.withLock { s in
      (
        s.samples, s.trace,
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
    result.trace = trace
    result.histograms = histograms
    result.findings = Self.findings(scenario, metrics, inboxes: run.slow.maxDepths)
    result.heapProfile = profile
    return result
  }

  /// What the report should point out even when no check fails.
  static func findings(_ scenario: Scenario, _ metrics: Metrics, inboxes: [String: Int]) -> [String] {
    var out: [String] = []
    let windows = scenario.workload.compactMap(\.creditWindow)
    for (worker, depth) in inboxes.sorted(by: { $0.key < $1.key }) {
      let bound = (windows.max() ?? 0) * 2 + 16
      if depth > bound {
        out.append(
          "unbounded buffering: \(depth) messages waited at once for slow consumer \(worker)"
            + (windows.isEmpty ? " (no flow control)" : " (more than its credit window allows)"))
      }
    }
    if let peak = metrics.peakBytes, let retained = metrics.retainedBytes, peak > 64 << 20 {
      out.append("peak memory \(peak >> 20) MiB above baseline during the run (\(retained) B retained after)")
    }
    return out
  }

  /// Histograms in `.hgrm` form (values in microseconds), leaving out empty ones.
  static func hgrm(_ histograms: [String: Histogram<UInt64>]) -> [String: String] {
    var out: [String: String] = [:]
    for (name, h) in histograms where h.totalCount > 0 {
      var text = ""
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
      let fitted = s.samples.dropFirst(s.samples.count / 10)
      m.growthPerStream = slope(fitted.compactMap { x in x.allocated.map { (Double(x.streamsCompleted), Double($0)) } })
      m.growthPerChunk = slope(fitted.compactMap { x in x.allocated.map { (Double(x.chunksDelivered), Double($0)) } })
      if let memory, memory.available {
        m.retainedBytes = memory.retained
        m.peakBytes = memory.peak
        m.memorySource = memory.source
      }
      m.messages = Dictionary(uniqueKeysWithValues: s.wire.map { ($0.key.rawValue, $0.value) })
      m.dropped = dropped
      m.callbackFailures = failures
      m.faultsInjected = faultHits
      m.maxInboxDepth = inboxDepths.values.max()
      return m
    }
  }

  /// The name and version an adapter gives in its handshake, or why there is none.
  public static func describeAdapter(_ command: String) -> String {
    do {
      let process = try AdapterProcess(command: command, label: "implementation", deadline: .seconds(10))
      defer { process.shutdown() }
      let hello = try process.hello()
      return "\(hello.name) \(hello.version)"
    } catch {
      return "unknown implementation"
    }
  }

  /// Least-squares slope of y over x; `nil` with fewer than 5 points or no spread in x.
  static func slope(_ points: [(Double, Double)]) -> Double? {
    guard points.count >= 5 else { return nil }
    let n = Double(points.count)
    let mx = points.reduce(0) { $0 + $1.0 } / n
    let my = points.reduce(0) { $0 + $1.1 } / n
    let sxx = points.reduce(0) { $0 + ($1.0 - mx) * ($1.0 - mx) }
    guard sxx > 0 else { return nil }
    return points.reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / sxx
  }

  static func summary(_ h: Histogram<UInt64>) -> LatencySummary? {
    guard h.totalCount > 0 else { return nil }
    let us = { (v: UInt64) in Double(v) / 1_000 }
    return LatencySummary(
      count: Int(h.totalCount), p50: us(h.valueAtPercentile(50)), p90: us(h.valueAtPercentile(90)),
      p99: us(h.valueAtPercentile(99)), p999: us(h.valueAtPercentile(99.9)), max: us(h.max), mean: h.mean / 1_000)
  }
}

/// Turns one expectation and what the run recorded into a verdict.
struct Judge {
  let run: ReferenceRun
  let metrics: Metrics

  func check(_ e: Expectation) -> CheckResult {
    let level = KSPRule.named(e.rule)?.level.rawValue ?? (e.rule == "PERF" ? "PERF" : "MUST")
    var result = evaluate(e.kind)
    result.name = e.name
    result.rule = e.rule
    result.level = level
    // A broken SHOULD rule conforms with a warning, never fails (PROTOCOL.md).
    if result.verdict == .fail && level == "SHOULD" { result.verdict = .nonStrict }
    return result
  }

  private func pass(_ expected: String, _ observed: String) -> CheckResult {
    CheckResult(name: "", rule: "", level: "", verdict: .pass, expected: expected, observed: observed)
  }

  private func fail(_ expected: String, _ observed: String, _ detail: String? = nil) -> CheckResult {
    CheckResult(name: "", rule: "", level: "", verdict: .fail, expected: expected, observed: observed, detail: detail)
  }

  private func unsupported(_ expected: String, _ observed: String) -> CheckResult {
    CheckResult(name: "", rule: "", level: "", verdict: .unsupported, expected: expected, observed: observed)
  }

  private func judge(_ ok: Bool, _ expected: String, _ observed: String, _ detail: String? = nil) -> CheckResult {
    ok ? pass(expected, observed) : fail(expected, observed, detail)
  }

  private var records: [StreamRecord] { run.state.withLock { $0.records } }

  private func label(_ i: Int, _ r: StreamRecord) -> String {
    "stream #\(i) (\(r.streamId ?? "?"), \(r.consumer ?? "?") ← \(r.producer ?? "?"))"
  }

  func evaluate(_ kind: Expectation.Kind) -> CheckResult {
    let records = self.records
    switch kind {
    case .orderedDelivery:
      var bad = 0
      var first: String?
      for (i, r) in records.enumerated() {
        var problem = r.mismatch
        if problem == nil, case .end? = r.outcome, let producer = r.producer,
          let b = run.scenario.behaviour(of: run.scenario.workload[r.group].method, on: producer),
          r.received != b.chunks
        {
          problem = "ended after \(r.received) of \(b.chunks) chunks"
        }
        if let problem {
          bad += 1
          if first == nil { first = "\(label(i, r)): \(problem)" }
        }
      }
      return judge(
        bad == 0, "every chunk once, in order, unchanged (\(records.count) streams)",
        bad == 0 ? "\(metrics.chunksDelivered) chunks in order" : "\(bad) streams out of order or incomplete", first)

    case .exactlyOneTerminal:
      let offenders = records.enumerated().filter { $0.element.terminals != 1 || $0.element.lateCallback != nil }
      let first = offenders.first.map { i, r in
        "\(label(i, r)): \(r.terminals) terminal callbacks" + (r.lateCallback.map { "; \($0)" } ?? "")
      }
      return judge(
        offenders.isEmpty, "one terminal callback per stream, nothing after",
        offenders.isEmpty ? "\(records.count) streams, one each" : "\(offenders.count) streams broke it", first)

    case .outcome(let match):
      let matching = records.filter { matches($0.outcome, match) }.count
      let needed = Int((Double(records.count) * match.fraction).rounded(.up))
      let firstMiss = records.enumerated().first { !matches($0.element.outcome, match) }
      return judge(
        matching >= needed && !records.isEmpty, describe(match, count: needed),
        "\(matching) of \(records.count) streams",
        firstMiss.map { "\(label($0.offset, $0.element)): \(describe($0.element.outcome))" })

    case .summaryPreserved:
      var bad: String?
      var ended = 0
      for (i, r) in records.enumerated() {
        guard case .end? = r.outcome else { continue }
        ended += 1
        if let problem = r.summaryProblem, bad == nil { bad = "\(label(i, r)): \(problem)" }
      }
      return judge(bad == nil && ended > 0, "onEnd receives the producer's summary", "\(ended) ended streams", bad)

    case .activeStreamsEmpty:
      let crashed = run.state.withLock { $0.crashed }
      var left: [String] = []
      for (name, bus) in run.buses.sorted(by: { $0.key < $1.key }) where !crashed.contains(name) {
        let s = bus.stats
        if s.activeStreams > 0 { left.append("\(name): \(s.activeStreams) activeStreams entries") }
        if s.emitters > 0 { left.append("\(name): \(s.emitters) producer emitters") }
      }
      return judge(
        left.isEmpty, "no activeStreams entry and no emitter left",
        left.isEmpty ? "all empty" : left.joined(separator: "; "))

    case .timeoutWindow:
      let sweep = run.sweepNanos
      var timedOut = 0
      var bad: String?
      for (i, r) in records.enumerated() {
        guard case .error(let e)? = r.outcome, e.code == ErrorCode.streamTimeout, let at = r.terminalAt else {
          continue
        }
        timedOut += 1
        let idle = at - r.lastActivity
        if (idle <= r.timeout || idle > r.timeout + sweep) && bad == nil {
          bad =
            "\(label(i, r)): timed out after \(Double(idle) / 1e6) ms idle; window (\(Double(r.timeout) / 1e6), \(Double(r.timeout + sweep) / 1e6)] ms"
        }
      }
      return judge(
        bad == nil && timedOut > 0, "STREAM_TIMEOUT after the timeout, within one sweep of it",
        "\(timedOut) streams timed out", bad ?? (timedOut == 0 ? "no stream timed out" : nil))

    case .handlerRuns(let perStream):
      let total = run.state.withLock { $0.handlerRuns }
      let bad = records.enumerated().first { $0.element.handlerRuns != perStream && $0.element.producer != nil }
      let expectedTotal = perStream * records.count
      return judge(
        bad == nil && total == expectedTotal, "the handler runs \(perStream)× per stream (\(expectedTotal) in all)",
        "\(total) runs", bad.map { "\(label($0.offset, $0.element)): \($0.element.handlerRuns) runs" })

    case .streamRequests:
      let bad = records.enumerated().first { $0.element.requests != 1 || $0.element.requestProblem != nil }
      return judge(
        bad == nil && !records.isEmpty, "one stream_request {method, args} per stream, fresh ids",
        "\(records.count) streams",
        bad.map {
          "\(label($0.offset, $0.element)): \($0.element.requestProblem ?? "\($0.element.requests) stream_requests")"
        })

    case .emitterClosed:
      let finished = records.filter { $0.producerFinished }.count
      let bad = records.enumerated().first { $0.element.closedProblem != nil }
      return judge(
        bad == nil && finished > 0, "nothing sent after end or error; further emits refused",
        "\(finished) streams finished by their producer",
        bad.map { "\(label($0.offset, $0.element)): \($0.element.closedProblem ?? "")" })

    case .tracePropagated:
      let traced = records.filter { $0.traceId != nil }
      let bad = records.enumerated().first { $0.element.traceProblem != nil }
      return judge(
        bad == nil && !traced.isEmpty, "every message of a traced stream carries its traceId",
        "\(traced.count) traced streams",
        bad.map { "\(label($0.offset, $0.element)): \($0.element.traceProblem ?? "")" })

    case .wireValid:
      let (count, examples) = run.state.withLock { ($0.invalidWireCount, $0.invalidWire) }
      let total = metrics.messages.values.reduce(0, +)
      return judge(
        count == 0, "every message a well-formed KenshoMessage", "\(count) of \(total) malformed",
        examples.first)

    case .payloadDigest:
      var compared = 0
      var bad: String?
      for (i, r) in records.enumerated() {
        guard case .end? = r.outcome, let sent = r.sentDigest, let received = r.receivedDigest else { continue }
        compared += 1
        let a = sent.finalize()
        let b = received.finalize()
        if a != b && bad == nil { bad = "\(label(i, r)): sent SHA-256 \(a), received \(b)" }
      }
      return judge(
        bad == nil && compared > 0, "SHA-256 of the bytes received = of the bytes sent",
        "\(compared) streams compared", bad ?? (compared == 0 ? "no binary stream ended" : nil))

    case .memoryReturns(let maxBytes):
      guard let retained = metrics.retainedBytes else {
        return unsupported("≤ \(maxBytes) B retained", "no jemalloc statistics")
      }
      return judge(
        retained <= maxBytes, "≤ \(maxBytes) B retained after all streams",
        "\(retained) B (\(metrics.memorySource ?? ""))")

    case .peakMemory(let maxBytes):
      guard let peak = metrics.peakBytes else {
        return unsupported("≤ \(maxBytes) B peak", "no jemalloc statistics")
      }
      return judge(
        peak <= maxBytes, "≤ \(maxBytes) B above baseline at peak", "\(peak) B (\(metrics.memorySource ?? ""))")

    case .noLeak(let perStream, let perChunk):
      let measured = [
        perStream.map { ("per stream", $0, metrics.growthPerStream) },
        perChunk.map { ("per chunk", $0, metrics.growthPerChunk) },
      ].compactMap { $0 }
      let expected = measured.map { "≤ \($0.1) B \($0.0)" }.joined(separator: ", ")
      if measured.contains(where: { $0.2 == nil }) {
        return unsupported(expected, "too few memory samples to fit (sampleEveryMs)")
      }
      let observed = measured.map { String(format: "%.1f B %@", $0.2 ?? 0, $0.0) }.joined(separator: ", ")
      let ok = measured.allSatisfy { ($0.2 ?? 0) <= $0.1 }
      return judge(
        ok, expected, observed,
        ok ? nil : "memory grows with the work done: a leak (samples: \(run.state.withLock { $0.samples.count }))")

    case .metric(let metric, let min, let max):
      guard let value = value(of: metric) else {
        return unsupported(bounds(min, max), "not measured")
      }
      let ok = (min.map { value >= $0 } ?? true) && (max.map { value <= $0 } ?? true)
      return judge(ok, bounds(min, max), String(format: "%.3f", value))
    }
  }

  func value(of metric: Metric) -> Double? {
    switch metric {
    case .latencyP50Us: metrics.chunkLatency?.p50
    case .latencyP90Us: metrics.chunkLatency?.p90
    case .latencyP99Us: metrics.chunkLatency?.p99
    case .latencyP999Us: metrics.chunkLatency?.p999
    case .latencyMaxUs: metrics.chunkLatency?.max
    case .chunksPerSecond: metrics.chunksPerSecond
    case .bytesPerSecond: metrics.bytesPerSecond
    case .retainedBytes: metrics.retainedBytes.map(Double.init)
    case .peakBytes: metrics.peakBytes.map(Double.init)
    case .chunksDelivered: Double(metrics.chunksDelivered)
    case .streamsCompleted: Double(metrics.streamsCompleted)
    case .maxInboxDepth: metrics.maxInboxDepth.map(Double.init)
    }
  }

  func bounds(_ min: Double?, _ max: Double?) -> String {
    switch (min, max) {
    case (let a?, let b?): "between \(a) and \(b)"
    case (let a?, nil): "≥ \(a)"
    case (nil, let b?): "≤ \(b)"
    case (nil, nil): "anything"
    }
  }

  func matches(_ outcome: StreamRecord.Outcome?, _ m: OutcomeMatch) -> Bool {
    switch (outcome, m.terminal) {
    case (.end?, .end): return true
    case (.error(let e)?, .error):
      return (m.code.map { $0 == e.code } ?? true) && (m.name.map { $0 == e.name } ?? true)
        && (m.message.map { $0 == e.message } ?? true)
    default: return false
    }
  }

  func describe(_ m: OutcomeMatch, count: Int) -> String {
    var parts = [m.terminal == .end ? "onEnd" : "onError"]
    if let code = m.code { parts.append("code \(code)") }
    if let name = m.name { parts.append("name \(name)") }
    if let message = m.message { parts.append("message \"\(message)\"") }
    return parts.joined(separator: ", ") + " for \(count) streams"
  }

  func describe(_ outcome: StreamRecord.Outcome?) -> String {
    switch outcome {
    case .end?: "onEnd"
    case .error(let e)?: "onError(\(e))"
    case nil: "no terminal callback"
    }
  }
}
