/// KSP-11.5: a relay that requires a token refuses an upgrade without a valid one (HTTP 401)
/// and never forwards a frame of a client it has not admitted.
public struct RelayAuth: Check {
  public let rule = "KSP-11.5"
  public let expected = "401 without a valid token, 101 with one; no frame of an unadmitted client forwarded"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    guard j.tokenRequired else { return .untested("the relay ran without a token (scenario network.token)") }
    let refusals = j.upgrades.filter { $0.credential == "none" || $0.credential == "wrong" }
    guard !refusals.isEmpty else { return .untested("the probe tried no upgrade without a valid token") }
    let intruders = Set(j.upgrades.flatMap(\.intruderFrames))
    for c in j.connections {
      if let leaked = c.received.first(where: { intruders.contains($0.body) }) {
        return .fail(
          observed: "a frame of an unadmitted client reached \(c.name)",
          RelayProbeNeeded.counterexample(
            "\(c.name) received \(leaked.shown) from a client without a valid token",
            at: leaked.t))
      }
    }
    for u in refusals where u.status != 401 {
      let answer = u.status.map { "HTTP \($0)" } ?? "no answer"
      return .fail(
        observed: "an upgrade with \(u.credential == "none" ? "no" : "a wrong") token got \(answer)",
        RelayProbeNeeded.counterexample(
          "the upgrade with \(u.credential == "none" ? "no token" : "a wrong token") was answered \(answer), not 401"))
    }
    for u in j.upgrades where (u.credential == "query" || u.credential == "bearer") && u.status != 101 {
      return .error("the relay refused a valid token (\(u.credential)): HTTP \(u.status.map(String.init) ?? "none")")
    }
    return .pass(observed: "\(refusals.count) upgrades without a valid token refused with 401")
  }
}
