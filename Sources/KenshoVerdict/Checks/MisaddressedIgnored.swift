import KenshoProtocol

/// KSP-1.3: a message addressed to another worker is ignored.
public struct MisaddressedIgnored: Check {
  public let rule = "KSP-1.3"
  public let expected = "messages for another worker ignored: no callback, no stream disturbed"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let forged = ForgedDeliveries.find(run.history, misaddressed: true)
    guard !forged.isEmpty else { return .untested("no misaddressed message was delivered to a bus") }
    if let c = disturbance(run, forged: forged) { return .fail(observed: "\(forged.count) delivered", c) }
    return .pass(observed: "\(forged.count) misaddressed messages delivered and ignored")
  }
}
