import KenshoProtocol

/// KSP-8.2 (and KSP-6.2): a stream whose consumer or producer lost its relay connection while
/// the stream was open (a `disconnect` action) still ends exactly once, before the run does:
/// with `onEnd` when nothing it needed was lost, else reclaimed with `STREAM_TIMEOUT` (KSP-6) or
/// `PRODUCER_GONE` (KSP-8.1). No report comes when a peer's connection drops, so a stream that
/// lost messages hangs on only until its idle timeout. Untested when no stream was open across
/// a disconnection.
public struct DisconnectRecovery: Check {
  public let rule: String
  public let expected = "each stream cut off by a disconnection ends once: onEnd, STREAM_TIMEOUT or PRODUCER_GONE"
  public init(rule: String = "KSP-8.2") { self.rule = rule }

  static let reclaimed: Set<String> = [ErrorCode.streamTimeout, ErrorCode.producerGone]

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    if run.disconnections.isEmpty { return .untested("no relay connection was cut (no disconnect action ran)") }
    var judged = 0
    var ended = 0
    for (s, tl) in run.timelines.enumerated() {
      guard let d = tl.cutOff else { continue }
      judged += 1
      let cut = run.disconnections[d]
      let why = "cut off when \(h.name(cut.worker))'s relay connection was closed at \(History.ms(cut.at)) ms"
      guard let (terminal, at) = tl.terminal else {
        // A run stopped at its deadline may not have reached the timeout yet: judge only when
        // the idle timeout plus a sweep had passed since the disconnection.
        let due = h.latestTimeout(of: s, after: cut.back ?? cut.at)
        if h.complete || h.endedAt > due {
          return .fail(
            observed: "\(judged) streams cut off",
            run.counterexample(stream: s, at: h.endedAt, "\(why), and never ended"))
        }
        judged -= 1
        continue
      }
      if tl.terminals.count > 1 {
        return .fail(
          observed: "\(judged) streams cut off",
          run.counterexample(
            stream: s, at: tl.terminals[1].t,
            "\(why), and ended \(tl.terminals.count) times: "
              + tl.terminals.map { $0.0.describe(h) }.joined(separator: ", ")))
      }
      if case .end = terminal {
        ended += 1
        continue
      }
      let code = terminal.error(h)?.code ?? ""
      if !Self.reclaimed.contains(code) {
        return .fail(
          observed: "\(judged) streams cut off",
          run.counterexample(
            stream: s, at: at,
            "\(why), and ended with \(terminal.describe(h)), neither onEnd nor a reclaim (STREAM_TIMEOUT, PRODUCER_GONE)"
          ))
      }
    }
    if judged == 0 { return .untested("no stream was open across a disconnection of its consumer or producer") }
    return .pass(observed: "\(judged) streams cut off: \(ended) ended, \(judged - ended) reclaimed")
  }
}
