import KenshoHarness
public import KenshoScenario
public import KenshoVerdict

/// A metric that got worse than in the baseline report by more than allowed.
public struct Regression: Sendable, Codable, Hashable {
  public var scenario: String
  public var metric: String
  public var baseline: Double
  public var current: Double
  /// The allowed change, as text (e.g. "≤ +25 %").
  public var allowed: String
}

/// Compares a run with a baseline report, metric by metric.
public enum BaselineComparison {
  /// The metrics compared, and whether more is better.
  static let compared: [(Metric, higherIsBetter: Bool)] = [
    (.chunksPerSecond, true), (.bytesPerSecond, true), (.latencyP50Us, false), (.latencyP99Us, false),
    (.retainedBytes, false), (.peakBytes, false),
  ]

  /// Memory within this many bytes of the baseline never counts as a regression: a few pages
  /// of allocator noise are not a trend.
  public static let memorySlack = 64.0 * 1024

  /// Regressions of `current` against `baseline`, scenario by scenario (matched by name).
  /// `limits` are per-scenario overrides of `defaultLimit` (a fraction: 0.25 = 25 % worse).
  public static func regressions(
    current: [ScenarioResult], baseline: RunReport, defaultLimit: Double, limits: [String: [Metric: Double]] = [:]
  ) -> [Regression] {
    let before = Dictionary(baseline.scenarios.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var found: [Regression] = []
    for result in current {
      guard let old = before[result.name] else { continue }
      for (metric, higherIsBetter) in compared {
        guard let now = value(metric, result.metrics), let then = value(metric, old.metrics) else { continue }
        let limit = limits[result.name]?[metric] ?? defaultLimit
        let isMemory = metric == .retainedBytes || metric == .peakBytes
        let worse: Bool
        let allowed: String
        if higherIsBetter {
          worse = now < then * (1 - limit)
          allowed = "≥ \(percent(1 - limit)) % of baseline"
        } else {
          worse = now > then * (1 + limit) + (isMemory ? memorySlack : 0)
          allowed = "≤ +\(percent(limit)) %" + (isMemory ? " + 64 KiB" : "")
        }
        if worse {
          found.append(
            Regression(scenario: result.name, metric: metric.rawValue, baseline: then, current: now, allowed: allowed))
        }
      }
    }
    return found
  }

  /// `fraction` in whole percent, rounded toward zero; never traps (limits are bounded where
  /// they enter, but this is not the place to rely on it).
  static func percent(_ fraction: Double) -> String {
    let p = (fraction * 100).rounded(.towardZero)
    return p.isFinite && p.magnitude < 1e15 ? String(Int64(p)) : String(p)
  }

  static func value(_ metric: Metric, _ m: Metrics) -> Double? {
    switch metric {
    case .chunksPerSecond: m.chunksDelivered > 0 ? m.chunksPerSecond : nil
    case .bytesPerSecond: m.bytesDelivered > 0 ? m.bytesPerSecond : nil
    case .latencyP50Us: m.chunkLatency?.p50
    case .latencyP99Us: m.chunkLatency?.p99
    case .retainedBytes: m.retainedBytes.map(Double.init)
    case .peakBytes: m.peakBytes.map(Double.init)
    default: nil
    }
  }
}
