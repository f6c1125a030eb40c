import Foundation
import KenshoProtocol
public import KenshoScenario

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
    // A lower bound on memory asks to see buffering, which a slow consumer's inbox shows in
    // process (the harness holds it there); through an adapter only the implementation's own
    // processes are measured, and the inbox is not theirs: the situation the bound speaks of
    // does not happen in what is measured (nothing proved, nothing lacking).
    if min != nil, metric == .retainedBytes || metric == .peakBytes,
      let source = run.metrics.memorySource, source != "thread", source != "process"
    {
      return .untested(
        "a lower bound on memory asks to see the slow consumer's inbox, which the harness holds, not the "
          + "implementation's processes (the only memory measured through an adapter)")
    }
    let ok = (min.map { value >= $0 } ?? true) && (max.map { value <= $0 } ?? true)
    let observed = String(format: "%.3f", value)
    return ok
      ? .pass(observed: observed)
      : .fail(observed: observed, Counterexample(text: "\(metric.rawValue) = \(observed), expected \(expected)"))
  }
}
