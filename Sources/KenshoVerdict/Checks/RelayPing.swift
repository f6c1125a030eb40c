/// KSP-11.3: a text `ping` is answered `pong` to its sender only, and not forwarded.
public struct RelayPing: Check {
  public let rule = "KSP-11.3"
  public let expected = "one pong per ping, to the sender only; no ping forwarded"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    let total = j.pings.values.reduce(0, +)
    guard total > 0 else {
      return j.problems.isEmpty ? .untested("the probe sent no ping") : .error(j.problems.joined(separator: "; "))
    }
    for c in j.connections {
      if let forwarded = c.received.first(where: RelayJournal.isPing) {
        return .fail(
          observed: "a ping was forwarded to \(c.name)",
          RelayProbeNeeded.counterexample("\(c.name) received a \"ping\" it never sent", at: forwarded.t))
      }
      let pongs = c.received.filter(RelayJournal.isPong).count
      let pings = j.pings[c.name, default: 0]
      if pongs != pings {
        let t = c.received.last(where: RelayJournal.isPong)?.t
        return .fail(
          observed: "\(c.name) sent \(pings) pings and got \(pongs) pongs",
          RelayProbeNeeded.counterexample(
            pings == 0
              ? "\(c.name) sent no ping, yet received \(pongs) pong (another client's answer)"
              : "\(c.name) sent \(pings) pings and received \(pongs) pongs", at: t))
      }
    }
    return .pass(observed: "\(total) pings, each answered to its sender only")
  }
}
