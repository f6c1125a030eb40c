/// Latency percentiles, in microseconds.
public struct LatencySummary: Sendable, Hashable, Codable {
  public var count: Int
  public var p50: Double
  public var p90: Double
  public var p99: Double
  public var p999: Double
  public var max: Double
  public var mean: Double

  public init(count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double) {
    self.count = count
    self.p50 = p50
    self.p90 = p90
    self.p99 = p99
    self.p999 = p999
    self.max = max
    self.mean = mean
  }
}

/// What a run measured.
public struct Metrics: Sendable, Hashable, Codable {
  public init() {}

  public var streamsOpened = 0
  public var streamsCompleted = 0
  public var chunksEmitted = 0
  public var chunksDelivered = 0
  public var bytesDelivered = 0
  /// Wall-clock seconds of the workload.
  public var wallSeconds = 0.0
  /// Scenario time at the end, in ms (virtual or real).
  public var scenarioMs = 0.0
  public var chunksPerSecond = 0.0
  public var bytesPerSecond = 0.0
  /// Per-chunk latency, producer emit to consumer callback (wall clock, uncorrected).
  public var chunkLatency: LatencySummary?
  /// Per-chunk latency from when each chunk was due, in scenario time (corrected for
  /// coordinated omission, as wrk2 does).
  public var chunkLatencyCorrected: LatencySummary?
  /// From when a stream was due to open to its first chunk, in scenario time.
  public var timeToFirstChunk: LatencySummary?
  /// From when a stream was due to open to its terminal callback, in scenario time.
  public var streamCompletion: LatencySummary?
  /// The chunk latency (wall clock) percentile curve.
  public var latencyCurve: [PercentilePoint] = []
  /// Bytes per open stream at the sample with the most open streams.
  public var bytesPerOpenStream: Double?
  /// The fitted growth of memory per completed stream and per delivered chunk (KSP-9.2): the
  /// slopes of ``growthPerStreamFit`` and ``growthPerChunkFit``.
  public var growthPerStream: Double?
  public var growthPerChunk: Double?
  /// The lines behind them, with their margins and the work they span (``GrowthFit``).
  public var growthPerStreamFit: GrowthFit?
  public var growthPerChunkFit: GrowthFit?
  /// Memory allocated when all streams were terminal, minus the baseline before them.
  public var retainedBytes: Int?
  /// Highest memory above the baseline during the run.
  public var peakBytes: Int?
  /// How memory was measured: `thread` (one thread's allocations, exact), `process`, or what an
  /// implementation behind an adapter reported (its heap after a collection, or its resident set).
  public var memorySource: String?
  /// The spread of memory readings at rest before the run, bytes: the memory checks allow it on
  /// top of their bounds (0 in process, where the allocator's counters are exact).
  public var memoryNoiseFloorBytes: Int?
  /// Messages on the wire, by type.
  public var messages: [String: Int] = [:]
  /// Messages dropped by the buses, by reason.
  public var dropped: [String: Int] = [:]
  public var callbackFailures = 0
  /// How often each fault of the scenario hit a message.
  public var faultsInjected: [String: Int] = [:]
  /// The most messages waiting in a slow consumer's inbox at once.
  public var maxInboxDepth: Int?
}

/// A sample of the run over time.
public struct Sample: Sendable, Hashable, Codable {
  /// Scenario time, ms.
  public var t: Double
  public var activeStreams: Int
  public var emitters: Int
  /// Bytes above the baseline.
  public var allocated: Int?
  public var chunksDelivered: Int
  public var streamsCompleted: Int
  /// Streams opened and not yet terminal, as the harness counts them.
  public var openStreams: Int?
  /// The process's jemalloc `stats.allocated`, `stats.active` and `stats.resident`.
  public var processAllocated: Int?
  public var processActive: Int?
  public var processResident: Int?
  /// Chunk latency (wall clock) over the interval since the previous sample.
  public var latencyP50Us: Double?
  public var latencyP99Us: Double?

  public init(
    t: Double, activeStreams: Int, emitters: Int, allocated: Int?, chunksDelivered: Int, streamsCompleted: Int,
    openStreams: Int? = nil, processAllocated: Int? = nil, processActive: Int? = nil, processResident: Int? = nil,
    latencyP50Us: Double? = nil, latencyP99Us: Double? = nil
  ) {
    self.openStreams = openStreams
    self.t = t
    self.activeStreams = activeStreams
    self.emitters = emitters
    self.allocated = allocated
    self.chunksDelivered = chunksDelivered
    self.streamsCompleted = streamsCompleted
    self.processAllocated = processAllocated
    self.processActive = processActive
    self.processResident = processResident
    self.latencyP50Us = latencyP50Us
    self.latencyP99Us = latencyP99Us
  }
}

/// A point of a latency percentile curve.
public struct PercentilePoint: Sendable, Hashable, Codable {
  public var percentile: Double
  public var valueUs: Double

  public init(percentile: Double, valueUs: Double) {
    self.percentile = percentile
    self.valueUs = valueUs
  }
}

/// The result of one scenario.
public struct ScenarioResult: Sendable, Hashable, Codable {
  public var name: String
  public var file: String?
  public var description: String
  public var seed: UInt64
  public var timeMode: String
  public var verdict: Verdict
  public var checks: [CheckResult]
  public var metrics: Metrics
  public var samples: [Sample]
  /// The messages of the streams its failing checks point at (or a short sample), bounded:
  /// the report's wire log.
  public var wireLog = WireLog()
  /// Why the scenario could not run to the end, when it could not.
  public var error: String?
  /// Histograms in HdrHistogram's `.hgrm` text form, by name; written beside the report.
  public var histograms: [String: String] = [:]
  /// A jemalloc heap profile written when a leak check failed, and how to read it.
  public var heapProfile: String?
  /// What the report points out even when no check fails (unbounded buffering, ...).
  public var findings: [Finding] = []
  /// With `--repeat N`: each compared figure's value in every run, by figure name; the other
  /// fields describe one run (the first with the worst verdict).
  public var figures: [String: [Double]]?

  public init(
    name: String, file: String?, description: String, seed: UInt64, timeMode: String, verdict: Verdict,
    checks: [CheckResult], metrics: Metrics, samples: [Sample], error: String? = nil
  ) {
    self.name = name
    self.file = file
    self.description = description
    self.seed = seed
    self.timeMode = timeMode
    self.verdict = verdict
    self.checks = checks
    self.metrics = metrics
    self.samples = samples
    self.error = error
  }

  // `histograms` go to their own `.hgrm` files, not into the JSON.
  enum CodingKeys: String, CodingKey {
    case name, file, description, seed, timeMode, verdict, checks, metrics, samples, wireLog, error, heapProfile,
      findings, figures
  }

  /// The rules this scenario's checks cite.
  public var rules: [String] {
    var seen: [String] = []
    for c in checks where !seen.contains(c.rule) { seen.append(c.rule) }
    return seen
  }
}
