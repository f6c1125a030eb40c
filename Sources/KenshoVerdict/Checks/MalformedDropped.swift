import KenshoProtocol

/// KSP-1.2: a received message that breaks KSP-1.1 is dropped: no callback sees it and no
/// stream is disturbed. Untested unless the harness delivered such a message (fault `forge`).
public struct MalformedDropped: Check {
  public let rule = "KSP-1.2"
  public let expected = "malformed messages dropped: no callback, no stream disturbed"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let forged = ForgedDeliveries.find(run.history, misaddressed: false)
    guard !forged.isEmpty else { return .untested("no malformed message was delivered to a bus") }
    if let c = disturbance(run, forged: forged) { return .fail(observed: "\(forged.count) delivered", c) }
    return .pass(observed: "\(forged.count) malformed messages delivered and dropped")
  }
}
