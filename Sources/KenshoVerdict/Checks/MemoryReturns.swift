import Foundation
import KenshoProtocol
import KenshoScenario

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
    let floor = run.metrics.memoryNoiseFloorBytes ?? 0
    let observed = "\(retained) B (\(run.metrics.memorySource ?? "")\(floorNote(floor)))"
    return retained <= maxBytes + floor
      ? .pass(observed: observed)
      : .fail(
        observed: observed,
        Counterexample(text: "\(retained) B still allocated once every stream was terminal\(floorNote(floor))"))
  }
}
