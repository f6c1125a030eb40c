import Foundation

/// KSP-11.6 (SHOULD): a stalled receiver does not delay the others; what the relay cannot
/// deliver to it is dropped (or the connection closed), never buffered without bound.
public struct RelaySlowReceiver: Check {
  public let rule = "KSP-11.6"
  public let expected = "readers keep up while one receiver stalls; the stalled one loses frames or is closed"
  /// How much slower than before the stall the readers may get.
  static let lagAllowance: Int64 = 2_000_000_000
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    guard let s = j.stall else {
      return j.problems.isEmpty ? .untested("no receiver stalled") : .error(j.problems.joined(separator: "; "))
    }
    let mib = Double(s.totalBytes) / 1_048_576
    if s.missedByReaders > 0 {
      return .fail(
        observed: "the reading receivers missed \(s.missedByReaders) frames while \(s.stalled) stalled",
        RelayProbeNeeded.counterexample("\(s.missedByReaders) of \(s.frames) frames never reached a reading receiver"))
    }
    if s.lagDuringStall > s.lagBefore + Self.lagAllowance {
      return .fail(
        observed: "delivery to the readers slowed to \(History.ms(s.lagDuringStall)) ms while \(s.stalled) stalled",
        RelayProbeNeeded.counterexample(
          "the slowest delivery took \(History.ms(s.lagDuringStall)) ms during the stall against "
            + "\(History.ms(s.lagBefore)) ms before"))
    }
    if !s.closed && s.receivedAfterResume >= s.frames {
      return .fail(
        observed: "the relay held all \(String(format: "%.0f", mib)) MiB for the stalled receiver",
        RelayProbeNeeded.counterexample(
          "\(s.stalled) read nothing while \(s.frames) frames (\(String(format: "%.0f", mib)) MiB) went by, then "
            + "received every one of them: the relay kept them all for it (no bound at or below "
            + "\(String(format: "%.0f", mib)) MiB)"))
    }
    let fate = s.closed ? "its connection was closed" : "\(s.frames - s.receivedAfterResume) frames dropped for it"
    return .pass(observed: "readers unaffected over \(String(format: "%.0f", mib)) MiB; \(fate)")
  }
}
