import KenshoProtocol

/// KSP-6.2: a stream idle (KSP-3.3) for longer than its timeout ends with `STREAM_TIMEOUT`, never
/// before its timeout has passed and at the latest one sweep interval after. Also judged when
/// the run stopped at its deadline: a stream left idle past its timeout plus a sweep failed it.
///
/// Judged for KSP-6.1 it needs the default durations (300 000 ms, sweep 60 000 ms); for KSP-6.3,
/// durations the scenario configured.
public struct TimeoutWindow: Check {
  public let rule: String
  public let expected = "STREAM_TIMEOUT after the idle timeout, within one sweep of it"
  public init(rule: String = "KSP-6.2") { self.rule = rule }

  static let defaultTimeout: Int64 = 300_000_000_000
  static let defaultSweep: Int64 = 60_000_000_000

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    let defaults = h.sweepInterval == Self.defaultSweep
    if rule == "KSP-6.1" && !defaults { return .untested("the scenario sets its own sweep interval") }
    if rule == "KSP-6.3" && defaults && h.streams.allSatisfy({ $0.timeout == Self.defaultTimeout }) {
      return .untested("the scenario configures neither duration")
    }
    var timedOut = 0
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      if rule == "KSP-6.1" && info.timeout != Self.defaultTimeout { continue }
      guard let (terminal, at) = tl.terminal else {
        // Still open at the end of the run: idle past timeout + sweep is a missed timeout.
        guard tl.opened else { continue }
        let last = tl.lastActivity(h, stream: s, before: h.endedAt)
        if h.endedAt > h.latestTimeout(of: s, after: last) {
          return .fail(
            observed: "\(timedOut) streams timed out",
            run.counterexample(
              stream: s, at: h.endedAt,
              "idle for \(History.ms(h.endedAt - last)) ms with a timeout of \(History.ms(info.timeout)) ms and a sweep every \(History.ms(h.sweepInterval)) ms\(h.slackNote), and never timed out"
            ))
        }
        continue
      }
      guard terminal.error(h)?.code == ErrorCode.streamTimeout else { continue }
      timedOut += 1
      let last = tl.lastActivity(h, stream: s, before: at)
      let idle = at - last
      if idle <= info.timeout || at > h.latestTimeout(of: s, after: last) {
        return .fail(
          observed: "\(timedOut) streams timed out",
          run.counterexample(
            stream: s, at: at,
            "timed out after \(History.ms(idle)) ms idle (last activity at \(History.ms(last)) ms); allowed window (\(History.ms(info.timeout)), \(History.ms(info.timeout + h.sweepInterval))] ms\(h.slackNote)"
          ))
      }
    }
    return timedOut == 0
      ? .untested("no stream timed out") : .pass(observed: "\(timedOut) streams timed out in their window")
  }
}
