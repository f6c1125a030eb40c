import KenshoProtocol

/// KSP-3.3 (MUST): each chunk received from the stream's producer refreshes the stream's
/// last-activity time, and so does a held-back `stream_end` or `stream_error`; a message
/// dropped under KSP-1.2, 1.3 or 3.5, or sent by anyone but the producer, never does.
///
/// Judged from when the idle timeout fired (or had to fire, for a stream still open at the end
/// of the run), on the streams where what counts as activity decides it:
/// - a stream that outlived its timeout plus a sweep thanks to messages from its producer:
///   timing out sooner than `timeout` after the last of them means they were not counted;
/// - a stream that received messages that must not count after its last activity: timing out
///   (or staying open) late enough that only one of those explains it means it was counted.
/// A timeout outside every window that some reading of the rule allows is KSP-6.2's to judge.
public struct ActivityRefresh: Check {
  public let rule = "KSP-3.3"
  public let expected =
    "idle time counted from the last chunk, end or error accepted from the stream's producer, never from other messages"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    for (s, tl) in run.timelines.enumerated() where tl.opened {
      let info = h.streams[s]
      let window = Nanos.adding(info.timeout, h.sweepInterval)
      // The latest a timeout may be seen, from an activity: a window and the real-time slack.
      let late = Nanos.adding(window, h.observationSlack)
      let timedOut: Int64?
      let end: Int64
      if let (terminal, at) = tl.terminal {
        end = at
        timedOut = terminal.error(h)?.code == ErrorCode.streamTimeout ? at : nil
      } else {
        end = h.endedAt
        timedOut = nil
      }
      let last = tl.lastActivity(h, stream: s, before: end)
      let refreshed = last > info.openedAt
      let ignored = tl.latestNonRefreshing(h, stream: s, before: end).flatMap { $0.t > last ? $0 : nil }
      var decides = false

      // Messages from the producer kept the stream alive past an unrefreshed timeout.
      if refreshed && end - info.openedAt > late { decides = true }
      if let t = timedOut, refreshed, t - last <= info.timeout, t - info.openedAt > info.timeout {
        return .fail(
          observed: "\(judged) streams judged",
          run.counterexample(
            stream: s, at: t,
            "timed out \(History.ms(t - last)) ms after a message from its producer at \(History.ms(last)) ms, with a timeout of \(History.ms(info.timeout)) ms: that message did not refresh it"
          ))
      }
      // A message that must not count arrived after the last activity.
      if let (m, at) = ignored {
        let stillOpen = tl.terminal == nil && tl.opened
        let decidedAt = timedOut ?? (stillOpen ? h.endedAt : nil)
        if let t = decidedAt {
          decides = true
          if t - last > late && t - at <= window && (timedOut == nil || t - at > info.timeout) {
            return .fail(
              observed: "\(judged) streams judged",
              run.counterexample(
                stream: s, message: m, at: t,
                (timedOut == nil ? "still open" : "timed out")
                  + " \(History.ms(t - last)) ms after its last activity (timeout \(History.ms(info.timeout)) ms, sweep \(History.ms(h.sweepInterval)) ms): the \(h.describe(m)) at \(History.ms(at)) ms was counted as activity"
              ))
          }
        }
      }
      if decides { judged += 1 }
    }
    return judged == 0
      ? .untested("no stream's timeout depended on what counts as activity")
      : .pass(observed: "\(judged) streams whose timeout depended on what counts as activity")
  }
}
