/// KSP-11.4 (SHOULD): on connect the relay sends one text frame `{"type":"server_info", ...}`.
public struct RelayServerInfo: Check {
  public let rule = "KSP-11.4"
  public let expected = "a server_info text frame first on every connection, once"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    let connections = j.connections.filter { !$0.received.isEmpty }
    guard !connections.isEmpty else {
      return j.problems.isEmpty
        ? .untested("no probe connection received anything") : .error(j.problems.joined(separator: "; "))
    }
    for c in connections {
      guard let first = c.received.first, RelayJournal.isServerInfo(first) else {
        return .fail(
          observed: "\(c.name)'s first frame was no server_info",
          RelayProbeNeeded.counterexample(
            "the first frame \(c.name) received was \(c.received.first?.shown ?? "nothing")", at: c.received.first?.t))
      }
      let count = c.received.filter(RelayJournal.isServerInfo).count
      if count > 1 {
        return .fail(
          observed: "\(c.name) received \(count) server_info frames",
          RelayProbeNeeded.counterexample("\(c.name) received server_info \(count) times"))
      }
    }
    return .pass(observed: "server_info first, once, on \(connections.count) connections")
  }
}
