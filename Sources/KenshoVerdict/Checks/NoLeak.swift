import Foundation
import KenshoProtocol
import KenshoScenario

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
    // The noise floor spread over the work done: what noise alone can add to a slope.
    let floor = Double(m.memoryNoiseFloorBytes ?? 0)
    let slack = [
      "per stream": floor / Double(max(1, m.streamsCompleted)), "per chunk": floor / Double(max(1, m.chunksDelivered)),
    ]
    let observed =
      measured.map { String(format: "%.1f B %@", $0.2 ?? 0, $0.0) }.joined(separator: ", ")
      + floorNote(Int(floor))
    if let bad = measured.first(where: { ($0.2 ?? 0) > $0.1 + (slack[$0.0] ?? 0) }) {
      return .fail(
        observed: observed,
        Counterexample(text: String(format: "memory grows by %.1f B %@ of work done: a leak", bad.2 ?? 0, bad.0)))
    }
    return .pass(observed: observed)
  }
}
