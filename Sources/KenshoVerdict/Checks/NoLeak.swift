import Foundation
import KenshoProtocol
import KenshoScenario

/// KSP-9.2: memory does not grow with the streams completed or chunks delivered: a line fitted
/// through the later half of the work (``GrowthFit``) fails only when its whole margin lies above
/// the bound, passes when it lies below, and is inconclusive (UNTESTED) in between.
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
    let asked = [
      perStream.map { Measure(unit: "stream", limit: $0, fit: m.growthPerStreamFit) },
      perChunk.map { Measure(unit: "chunk", limit: $0, fit: m.growthPerChunkFit) },
    ].compactMap { $0 }
    let floor = m.memoryNoiseFloorBytes ?? 0
    if let unfit = asked.first(where: { $0.fit == nil }) {
      return .untested(
        "fewer than \(GrowthFit.minimumPoints) memory readings in the later half of the work, or no spread in the "
          + "\(unfit.unit)s done, to fit a slope (sample more often: time.sampleEveryMs)")
    }
    let observed = asked.map { $0.text }.joined(separator: ", ") + floorNote(floor)
    let verdicts = asked.map { (measure: $0, verdict: $0.verdict(floor: floor)) }
    if let leak = verdicts.first(where: { $0.verdict == .fail })?.measure, let fit = leak.fit {
      return .fail(
        observed: observed,
        Counterexample(
          text: String(
            format: "memory grows by %.1f ± %.1f B per %@ over %@s %.0f to %.0f (the later half of the work): a leak",
            fit.slope, fit.margin, leak.unit, leak.unit, fit.fromWork, fit.toWork)))
    }
    if let open = verdicts.first(where: { $0.verdict == .untested })?.measure {
      return .untested(
        "inconclusive: \(open.text) against ≤ \(open.limit) B; the readings scatter too much to tell (run more "
          + "\(open.unit)s to narrow the margin)" + floorNote(floor))
    }
    return .pass(observed: observed)
  }

  /// One bound asked for (per stream or per chunk) and the line fitted for it.
  private struct Measure {
    let unit: String
    let limit: Double
    let fit: GrowthFit?

    var text: String {
      guard let fit else { return "no slope per \(unit)" }
      return String(format: "%.1f ± %.1f B per %@", fit.slope, fit.margin, unit)
    }

    /// Fails when the whole margin lies above the bound, passes when it lies below; otherwise the
    /// readings cannot tell. The noise floor, spread over the work fitted, widens the bound.
    func verdict(floor: Int) -> Verdict {
      guard let fit else { return .untested }
      let bound = limit + Double(floor) / max(1, fit.toWork - fit.fromWork)
      if fit.slope - fit.margin > bound { return .fail }
      if fit.slope + fit.margin <= bound { return .pass }
      return .untested
    }
  }
}
