import Foundation
import KenshoProtocol
public import KenshoScenario

/// KSP-9.2: memory retained after every stream returns to its baseline.
public struct MemoryReturns: Check {
  public let rule: String
  public let maxBytes: Int
  public var expected: String { "≤ \(maxBytes) B retained after all streams" }
  public init(maxBytes: Int, rule: String = "KSP-9.2") {
    self.maxBytes = maxBytes
    self.rule = rule
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let retained = run.metrics.retainedBytes else { return .unsupported(memoryUnmeasured(run)) }
    guard run.metrics.streamsCompleted > 0 else { return .untested("no stream completed") }
    let observed = "\(retained) B (\(run.metrics.memorySource ?? ""))"
    return retained <= maxBytes
      ? .pass(observed: observed)
      : .fail(observed: observed, Counterexample(text: "\(retained) B still allocated once every stream was terminal"))
  }
}

/// KSP-9.3: memory above the baseline stays bounded while data streams through.
public struct PeakMemory: Check {
  public let rule: String
  public let maxBytes: Int
  public var expected: String { "≤ \(maxBytes) B above baseline at peak" }
  public init(maxBytes: Int, rule: String = "KSP-9.3") {
    self.maxBytes = maxBytes
    self.rule = rule
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let peak = run.metrics.peakBytes else { return .unsupported(memoryUnmeasured(run)) }
    guard run.metrics.chunksDelivered > 0 else { return .untested("no chunk was delivered") }
    let observed = "\(peak) B (\(run.metrics.memorySource ?? ""))"
    return peak <= maxBytes
      ? .pass(observed: observed) : .fail(observed: observed, Counterexample(text: "\(peak) B above baseline at peak"))
  }
}

/// KSP-9.2: memory does not grow with the streams completed or chunks delivered (a fitted slope).
public struct NoLeak: Check {
  public let rule: String
  public let perStream: Double?
  public let perChunk: Double?
  public var expected: String {
    [perStream.map { "≤ \($0) B per stream" }, perChunk.map { "≤ \($0) B per chunk" }].compactMap { $0 }.joined(
      separator: ", ")
  }
  public init(perStream: Double?, perChunk: Double?, rule: String = "KSP-9.2") {
    self.perStream = perStream
    self.perChunk = perChunk
    self.rule = rule
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let m = run.metrics
    guard m.memorySource != nil else { return .unsupported(memoryUnmeasured(run)) }
    let measured = [
      perStream.map { ("per stream", $0, m.growthPerStream) }, perChunk.map { ("per chunk", $0, m.growthPerChunk) },
    ].compactMap { $0 }
    if measured.contains(where: { $0.2 == nil }) {
      return .untested("too few memory samples, or no spread in the work done, to fit a slope (sampleEveryMs)")
    }
    let observed = measured.map { String(format: "%.1f B %@", $0.2 ?? 0, $0.0) }.joined(separator: ", ")
    if let bad = measured.first(where: { ($0.2 ?? 0) > $0.1 }) {
      return .fail(
        observed: observed,
        Counterexample(text: String(format: "memory grows by %.1f B %@ of work done: a leak", bad.2 ?? 0, bad.0)))
    }
    return .pass(observed: observed)
  }
}

func memoryUnmeasured(_ run: RunRecord) -> String {
  run.has(.memory) ? "memory was not measured (measurement off)" : "memory is not measured through an adapter"
}

/// A performance threshold of the scenario (rule `PERF`, or the rule the metric speaks for).
public struct MetricBound: Check {
  public let metric: Metric
  public let min: Double?
  public let max: Double?
  public let rule: String
  public init(_ metric: Metric, min: Double?, max: Double?, rule: String) {
    self.metric = metric
    self.min = min
    self.max = max
    self.rule = rule
  }

  public var expected: String {
    switch (min, max) {
    case (let a?, let b?): "between \(a) and \(b)"
    case (let a?, nil): "≥ \(a)"
    case (nil, let b?): "≤ \(b)"
    case (nil, nil): "anything"
    }
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let value = run.metrics.value(of: metric) else {
      switch metric {
      case .retainedBytes, .peakBytes: return .unsupported(memoryUnmeasured(run))
      default: return .untested("\(metric.rawValue) was not measured in this run")
      }
    }
    let ok = (min.map { value >= $0 } ?? true) && (max.map { value <= $0 } ?? true)
    let observed = String(format: "%.3f", value)
    return ok
      ? .pass(observed: observed)
      : .fail(observed: observed, Counterexample(text: "\(metric.rawValue) = \(observed), expected \(expected)"))
  }
}

extension Metrics {
  /// The value of a scenario metric, when this run measured it.
  public func value(of metric: Metric) -> Double? {
    switch metric {
    case .latencyP50Us: chunkLatency?.p50
    case .latencyP90Us: chunkLatency?.p90
    case .latencyP99Us: chunkLatency?.p99
    case .latencyP999Us: chunkLatency?.p999
    case .latencyMaxUs: chunkLatency?.max
    case .chunksPerSecond: wallSeconds > 0 ? chunksPerSecond : nil
    case .bytesPerSecond: wallSeconds > 0 ? bytesPerSecond : nil
    case .retainedBytes: retainedBytes.map(Double.init)
    case .peakBytes: peakBytes.map(Double.init)
    case .chunksDelivered: Double(chunksDelivered)
    case .streamsCompleted: Double(streamsCompleted)
    case .maxInboxDepth: maxInboxDepth.map(Double.init)
    }
  }
}
