import KenshoProtocol

/// A scenario's threshold (PERF) on a bus's relay transport (PROTOCOL.md §11: every worker holds
/// one connection to the relay): after the harness cuts a worker's connection, the worker is back
/// within `withinMs`, and the streams through it that began after it came back end normally.
/// Untested when no connection was cut, or no stream through a cut worker began after its return.
public struct Reconnect: Check {
  public let rule: String
  public let within: Int64
  public var expected: String {
    "each worker cut off is back within \(History.ms(within)) ms, and its later streams end with onEnd"
  }
  public init(within: Int64, rule: String = "PERF") {
    self.within = within
    self.rule = rule
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    if run.disconnections.isEmpty { return .untested("no relay connection was cut (no disconnect action ran)") }
    var slowest: Int64 = 0
    var later = 0
    for d in run.disconnections {
      let who = h.name(d.worker)
      guard let back = d.back, back - d.at <= within else {
        let text =
          d.back.map { "back only \(History.ms($0 - d.at)) ms after its relay connection was cut" }
          ?? "not back \(History.ms(h.endedAt - d.at)) ms after its relay connection was cut (the run's end)"
        // Not back yet, but the run ended before the bound passed: nothing to say.
        if d.back == nil && h.endedAt - d.at <= within { continue }
        return .fail(
          observed: "\(run.disconnections.count) disconnections",
          Counterexample(atMs: History.ms(d.at), text: "\(who) was \(text); allowed \(History.ms(within)) ms"))
      }
      slowest = max(slowest, back - d.at)
      for (s, tl) in run.timelines.enumerated() where tl.opened && tl.cutOff == nil {
        let info = h.streams[s]
        guard info.consumer == d.worker || info.producer == d.worker, info.openedAt >= back else { continue }
        later += 1
        if let (terminal, at) = tl.terminal, case .error = terminal {
          return .fail(
            observed: "\(later) streams through workers that came back",
            run.counterexample(
              stream: s, at: at,
              "began after \(who) came back at \(History.ms(back)) ms, and ended with \(terminal.describe(h))"))
        }
      }
    }
    if later == 0 {
      return .untested("no stream through a worker began after it came back (keep streams starting after the cut)")
    }
    return .pass(
      observed:
        "\(run.disconnections.count) disconnections, back within \(History.ms(slowest)) ms; \(later) later streams")
  }
}
