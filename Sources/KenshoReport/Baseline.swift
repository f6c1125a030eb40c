import KenshoHarness
public import KenshoScenario
public import KenshoVerdict

/// A figure that got worse than in the baseline report by more than allowed.
public struct Regression: Sendable, Codable, Hashable {
  public var scenario: String
  public var metric: String
  /// The baseline's value the rule compared with (with repeats: its worst run).
  public var baseline: Double
  /// This run's value the rule compared (with repeats: its best run).
  public var current: Double
  /// The allowed change, as text (e.g. "≤ +25 %").
  public var allowed: String
  /// How the figure was compared: "exact" (deterministic) or "best of 3 runs vs worst of 3".
  public var rule: String?

  public init(scenario: String, metric: String, baseline: Double, current: Double, allowed: String, rule: String?) {
    self.scenario = scenario
    self.metric = metric
    self.baseline = baseline
    self.current = current
    self.allowed = allowed
    self.rule = rule
  }
}

/// What a baseline comparison looked at, for the reports: how many figures were compared
/// exactly or over repeated runs, and which were left out and why.
public struct BaselineSummary: Sendable, Codable, Hashable {
  /// The baseline report's path, as given.
  public var file: String?
  /// Deterministic figures (virtual-time latencies, bytes, counts), compared from one run.
  public var exact = 0
  /// Wall-clock figures compared over repeated runs.
  public var repeated = 0
  /// Wall-clock figures left out: one side has a single run.
  public var notRepeated = 0
  /// Deterministic figures left out: the seed or time mode differs from the baseline's.
  public var notComparable = 0
  /// Scenarios of this run that the baseline does not have.
  public var newScenarios = 0
  /// The rule, in words, and what was left out.
  public var notes: [String] = []

  public init() {}
}

/// Compares a run with a baseline report, figure by figure, knowing which figures are noise.
///
/// - **Deterministic figures** — counts (chunks and streams delivered, bytes delivered), the
///   scenario-time latencies of a virtual-time run, and memory measured on the run's own
///   thread — replay from the seed: they are compared from a single run, without allowing for
///   noise. Counts must be equal; latencies and bytes may get worse by the allowed fraction
///   (bytes also by ``memorySlack``). They are compared only when the scenario ran with the
///   same seed and time mode as in the baseline, and only when every repeat of this run gave
///   the same value (otherwise they are treated as wall-clock figures).
/// - **Wall-clock figures** — throughput, wall-clock latencies, real-time latencies, memory of
///   the whole process — are noise on a shared machine unless runs are repeated
///   (`--repeat N`, N ≥ 2, in this run and in the baseline's). Then a figure regresses only
///   when this run's *best* value is worse than the baseline's *worst* by more than the
///   allowed fraction: for lower-is-better figures, `min(now) > max(before) × (1 + limit)`;
///   for higher-is-better ones, `max(now) < min(before) × (1 − limit)`. So a run compared with
///   itself never regresses.
public enum BaselineComparison {
  /// Which way a figure gets better.
  public enum Direction: Sendable {
    case lower, higher
    /// A count: any change is a regression.
    case equal
  }

  /// Whether a figure replays from the seed or is noise.
  public enum Kind: Sendable, Equatable {
    case deterministic, wallClock
  }

  /// A figure of a scenario's run that can be compared with a baseline's.
  public struct Figure: Sendable {
    public var name: String
    public var direction: Direction
    /// The scenario's own limit for it (`"regression"` in the scenario file), when it has one.
    public var limitKey: Metric?
    var kind: @Sendable (ScenarioResult) -> Kind
    var value: @Sendable (Metrics) -> Double?
  }

  /// Scenario-time figures are deterministic under virtual time only.
  static let scenarioTime: @Sendable (ScenarioResult) -> Kind = {
    $0.timeMode == "virtual" ? .deterministic : .wallClock
  }
  static let memory: @Sendable (ScenarioResult) -> Kind = {
    $0.metrics.memorySource == "thread" ? .deterministic : .wallClock
  }
  static let wall: @Sendable (ScenarioResult) -> Kind = { _ in .wallClock }

  /// Every figure compared, in report order.
  public static let figures: [Figure] = [
    Figure(
      name: "chunks_delivered", direction: .equal, limitKey: .chunksDelivered, kind: scenarioTime,
      value: { Double($0.chunksDelivered) }),
    Figure(
      name: "streams_completed", direction: .equal, limitKey: .streamsCompleted, kind: scenarioTime,
      value: { Double($0.streamsCompleted) }),
    Figure(
      name: "bytes_delivered", direction: .equal, kind: scenarioTime, value: { Double($0.bytesDelivered) }),
    Figure(
      name: "scenario_latency_p50_us", direction: .lower, limitKey: .latencyP50Us, kind: scenarioTime,
      value: { $0.chunkLatencyCorrected?.p50 }),
    Figure(
      name: "scenario_latency_p99_us", direction: .lower, limitKey: .correctedLatencyP99Us, kind: scenarioTime,
      value: { $0.chunkLatencyCorrected?.p99 }),
    Figure(
      name: "scenario_latency_max_us", direction: .lower, limitKey: .latencyMaxUs, kind: scenarioTime,
      value: { $0.chunkLatencyCorrected?.max }),
    Figure(
      name: "stream_completion_p99_us", direction: .lower, kind: scenarioTime, value: { $0.streamCompletion?.p99 }),
    Figure(
      name: "max_inbox_depth", direction: .lower, limitKey: .maxInboxDepth, kind: scenarioTime,
      value: { $0.maxInboxDepth.map(Double.init) }),
    Figure(
      name: "retained_bytes", direction: .lower, limitKey: .retainedBytes, kind: memory,
      value: { $0.retainedBytes.map(Double.init) }),
    Figure(
      name: "peak_bytes", direction: .lower, limitKey: .peakBytes, kind: memory,
      value: { $0.peakBytes.map(Double.init) }
    ),
    Figure(
      name: "chunks_per_second", direction: .higher, limitKey: .chunksPerSecond, kind: wall,
      value: { $0.chunksDelivered > 0 ? $0.chunksPerSecond : nil }),
    Figure(
      name: "bytes_per_second", direction: .higher, limitKey: .bytesPerSecond, kind: wall,
      value: { $0.bytesDelivered > 0 ? $0.bytesPerSecond : nil }),
    Figure(
      name: "latency_p50_us", direction: .lower, limitKey: .latencyP50Us, kind: wall, value: { $0.chunkLatency?.p50 }),
    Figure(
      name: "latency_p90_us", direction: .lower, limitKey: .latencyP90Us, kind: wall, value: { $0.chunkLatency?.p90 }),
    Figure(
      name: "latency_p99_us", direction: .lower, limitKey: .latencyP99Us, kind: wall, value: { $0.chunkLatency?.p99 }),
    Figure(
      name: "latency_p999_us", direction: .lower, limitKey: .latencyP999Us, kind: wall,
      value: { $0.chunkLatency?.p999 }),
  ]

  /// Memory within this many bytes of the baseline never counts as a regression: a few pages
  /// are not a trend.
  public static let memorySlack = 64.0 * 1024

  /// The fewest runs of a scenario, in this run and in the baseline, for its wall-clock
  /// figures to be compared.
  public static let minimumRepeats = 2

  /// Every figure of each run of a scenario (one metrics value per repeat), by name: what a
  /// report keeps of its repeats (``ScenarioResult/figures``).
  public static func values(of runs: [Metrics]) -> [String: [Double]] {
    var out: [String: [Double]] = [:]
    for figure in figures {
      let values = runs.compactMap(figure.value)
      if values.count == runs.count && !values.isEmpty { out[figure.name] = values }
    }
    return out
  }

  /// A figure's value in every run of a scenario: the repeats kept in the report, or its one run.
  static func values(_ figure: Figure, _ result: ScenarioResult) -> [Double] {
    if let repeated = result.figures?[figure.name], !repeated.isEmpty { return repeated }
    return figure.value(result.metrics).map { [$0] } ?? []
  }

  /// Regressions of `current` against `baseline`, scenario by scenario (matched by name).
  /// `limits` are per-scenario overrides of `defaultLimit` (a fraction: 0.25 = 25 % worse).
  public static func regressions(
    current: [ScenarioResult], baseline: RunReport, defaultLimit: Double, limits: [String: [Metric: Double]] = [:]
  ) -> [Regression] {
    compare(current: current, baseline: baseline, defaultLimit: defaultLimit, limits: limits).regressions
  }

  /// The regressions, and what was compared and how.
  public static func compare(
    current: [ScenarioResult], baseline: RunReport, defaultLimit: Double, limits: [String: [Metric: Double]] = [:]
  ) -> (regressions: [Regression], summary: BaselineSummary) {
    let before = Dictionary(baseline.scenarios.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var found: [Regression] = []
    var summary = BaselineSummary()
    var unstable: [String] = []
    for result in current {
      guard let old = before[result.name] else {
        summary.newScenarios += 1
        continue
      }
      for figure in figures {
        let now = values(figure, result)
        let then = values(figure, old)
        guard !now.isEmpty, !then.isEmpty else { continue }
        let limit = figure.limitKey.flatMap { limits[result.name]?[$0] } ?? defaultLimit
        let slack = figure.name.hasSuffix("_bytes") ? memorySlack : 0
        var kind = figure.kind(result)
        if kind == .deterministic && (Set(now).count > 1 || Set(then).count > 1) {
          // It did not replay exactly: it is noise after all.
          unstable.append("\(result.name) \(figure.name)")
          kind = .wallClock
        }
        switch kind {
        case .deterministic:
          guard old.seed == result.seed, old.timeMode == result.timeMode, figure.kind(old) == .deterministic else {
            summary.notComparable += 1
            continue
          }
          summary.exact += 1
          if let r = judge(
            figure, worstBefore: then[0], bestNow: now[0], limit: limit, slack: slack, scenario: result.name,
            rule: "exact (deterministic)")
          {
            found.append(r)
          }
        case .wallClock:
          guard figure.direction != .equal else { continue }
          guard now.count >= minimumRepeats, then.count >= minimumRepeats else {
            summary.notRepeated += 1
            continue
          }
          summary.repeated += 1
          let lowerIsBetter = figure.direction == .lower
          let worstBefore = lowerIsBetter ? then.max() ?? 0 : then.min() ?? 0
          let bestNow = lowerIsBetter ? now.min() ?? 0 : now.max() ?? 0
          if let r = judge(
            figure, worstBefore: worstBefore, bestNow: bestNow, limit: limit, slack: slack, scenario: result.name,
            rule: "best of \(now.count) runs vs worst of \(then.count)")
          {
            found.append(r)
          }
        }
      }
    }
    summary.notes.append(
      "deterministic figures (counts, scenario-time latencies in virtual time, memory of the run's own thread) "
        + "are compared exactly, from one run, when the seed and time mode match the baseline's")
    summary.notes.append(
      "a wall-clock figure regresses only when this run's best is worse than the baseline's worst by more than "
        + "the allowed fraction; it needs --repeat \(minimumRepeats) or more in both runs")
    if summary.notRepeated > 0 {
      summary.notes.append(
        "\(summary.notRepeated) wall-clock figures not compared: this run or the baseline has a single run "
          + "(use --repeat \(minimumRepeats) or more in both)")
    }
    if summary.notComparable > 0 {
      summary.notes.append(
        "\(summary.notComparable) deterministic figures not compared: the seed or time mode differs from the baseline's"
      )
    }
    if !unstable.isEmpty {
      summary.notes.append(
        "varied between repeats, so compared as wall-clock figures: "
          + unstable.prefix(5).joined(separator: ", ") + (unstable.count > 5 ? ", …" : ""))
    }
    if summary.newScenarios > 0 {
      summary.notes.append("\(summary.newScenarios) scenarios are not in the baseline")
    }
    return (found, summary)
  }

  /// A regression when `bestNow` is worse than `worstBefore` by more than allowed.
  static func judge(
    _ figure: Figure, worstBefore then: Double, bestNow now: Double, limit: Double, slack: Double, scenario: String,
    rule: String
  ) -> Regression? {
    let worse: Bool
    let allowed: String
    switch figure.direction {
    case .equal:
      worse = now != then
      allowed = "= baseline"
    case .higher:
      worse = now < then * (1 - limit)
      allowed = "≥ \(percent(1 - limit)) % of baseline"
    case .lower:
      worse = now > then * (1 + limit) + slack
      allowed = "≤ +\(percent(limit)) %" + (slack > 0 ? " + 64 KiB" : "")
    }
    guard worse else { return nil }
    return Regression(
      scenario: scenario, metric: figure.name, baseline: then, current: now, allowed: allowed, rule: rule)
  }

  /// `fraction` in whole percent, rounded toward zero; never traps (limits are bounded where
  /// they enter, but this is not the place to rely on it).
  static func percent(_ fraction: Double) -> String {
    let p = (fraction * 100).rounded(.towardZero)
    return p.isFinite && p.magnitude < 1e15 ? String(Int64(p)) : String(p)
  }
}
