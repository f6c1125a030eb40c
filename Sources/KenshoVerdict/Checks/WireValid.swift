import KenshoProtocol

/// KSP-1.1: every message a bus under test sends is a well-formed KenshoMessage.
public struct WireValid: Check {
  public let rule = "KSP-1.1"
  public let expected = "every message a well-formed KenshoMessage"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var sent = 0
    var bad = 0
    var first: Int?
    for (i, w) in h.wire.enumerated() where !w.isForged {
      sent += 1
      if w.problem >= 0 {
        bad += 1
        if first == nil { first = i }
      }
    }
    if let u = h.undecodable.first {
      return .fail(
        observed: "\(bad + h.undecodable.count) of \(sent + h.undecodable.count) malformed",
        Counterexample(
          atMs: History.ms(u.t), text: "\(h.name(u.from)) sent something that is not a KenshoMessage: \(u.problem)"))
    }
    guard sent > 0 else { return .untested("no bus sent a message") }
    guard let first else { return .pass(observed: "0 of \(sent) malformed") }
    let w = h.wire[first]
    let why = Int(w.problem) < h.problems.count ? h.problems[Int(w.problem)] : "malformed"
    return .fail(
      observed: "\(bad) of \(sent) malformed",
      Counterexample(
        stream: w.stream >= 0 ? Int(w.stream) : nil, message: first, atMs: History.ms(w.t),
        text: "\(h.describe(Int32(first))): \(why)"))
  }
}
