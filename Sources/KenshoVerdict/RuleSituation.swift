/// The situation a rule speaks of, and whether a run had it. A check judged under a rule
/// (its own, or one a scenario names for it) proves nothing about that rule when the situation
/// never arose: `active_streams_empty` under KSP-8.2 with no producer crash, `outcome` under
/// KSP-10.1 with no bus disposed while a stream was open, `exactly_one_terminal` under KSP-5.4
/// with no throwing callback run. Such a pass is UNTESTED, naming what did not happen.
public enum RuleSituation {
  /// Why the situation of `rule` did not occur in `run`, or nil when it did (or the rule has no
  /// situation beyond what its checks look for themselves).
  public static func missing(_ rule: String, in run: RunRecord) -> String? {
    let h = run.history
    switch rule {
    case "KSP-8.1", "KSP-8.2":
      // A producer gone: crashed (announced or not), or its connection cut at a relay.
      let gone = h.events.contains {
        switch $0.event {
        case .crash, .disconnected: true
        default: false
        }
      }
      return gone ? nil : "no producer crashed or lost its connection, the situation \(rule) speaks of"
    case "KSP-10.1":
      // A bus disposed while one of its streams was still open.
      for entry in h.events {
        guard case .dispose(let w) = entry.event else { continue }
        for (s, tl) in run.timelines.enumerated() where tl.opened {
          let info = h.streams[s]
          guard info.consumer == w || info.producer == w, info.openedAt <= entry.t else { continue }
          if tl.terminal.map({ $0.t >= entry.t }) ?? true { return nil }
        }
      }
      return "no bus was disposed while one of its streams was open, the situation KSP-10.1 speaks of"
    case "KSP-5.4":
      // A consumer callback configured to throw, and run.
      for (s, tl) in run.timelines.enumerated() {
        let throwing = h.streams[s].throwingCallbacks
        if throwing.isEmpty { continue }
        if throwing.contains(.onChunk) && !tl.chunks.isEmpty { return nil }
        switch tl.terminal?.0 {
        case .end? where throwing.contains(.onEnd): return nil
        case .error? where throwing.contains(.onError): return nil
        default: continue
        }
      }
      return "no callback configured to throw ran (throwIn), the situation KSP-5.4 speaks of"
    default:
      return nil
    }
  }
}
