import KenshoProtocol

/// KSP-3.2 for binary content: the SHA-256 of the bytes received equals that of the bytes sent.
public struct PayloadDigest: Check {
  public let rule = "KSP-3.2"
  public let expected = "SHA-256 of the bytes received = of the bytes sent"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    var compared = 0
    for (s, tl) in run.timelines.enumerated() {
      guard case .end? = tl.terminal?.0, let d = run.history.digests[s] else { continue }
      compared += 1
      if d.sent != d.received {
        return .fail(
          observed: "\(compared) streams compared",
          run.counterexample(stream: s, at: tl.terminal?.t, "sent SHA-256 \(d.sent), received \(d.received)"))
      }
    }
    return compared == 0 ? .untested("no binary stream ended") : .pass(observed: "\(compared) streams compared")
  }
}
