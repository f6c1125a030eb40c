import Foundation
import KenshoProtocol
import KenshoScenario

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
    let floor = run.metrics.memoryNoiseFloorBytes ?? 0
    let observed = "\(peak) B (\(run.metrics.memorySource ?? "")\(floorNote(floor)))"
    return peak <= maxBytes + floor
      ? .pass(observed: observed)
      : .fail(observed: observed, Counterexample(text: "\(peak) B above baseline at peak\(floorNote(floor))"))
  }
}
