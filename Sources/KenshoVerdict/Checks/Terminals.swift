import KenshoProtocol
public import KenshoScenario

/// KSP-4.2: one terminal callback per stream, and nothing after it.
public struct ExactlyOneTerminal: Check {
  public let rule = "KSP-4.2"
  public let expected = "one terminal callback per stream, nothing after"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    var ended = 0
    for (s, tl) in run.timelines.enumerated() {
      if tl.terminals.count > 1 {
        return .fail(
          observed: "\(ended) streams ended",
          run.counterexample(
            stream: s, at: tl.terminals[1].t,
            "\(tl.terminals.count) terminal callbacks: \(tl.terminals.map { $0.0.describe(run.history) }.joined(separator: ", "))"
          ))
      }
      if tl.chunksAfterTerminal > 0 {
        return .fail(
          observed: "\(ended) streams ended",
          run.counterexample(stream: s, "\(tl.chunksAfterTerminal) onChunk calls after the terminal callback"))
      }
      if !tl.terminals.isEmpty { ended += 1 }
    }
    if ended == 0 { return .untested("no stream reached a terminal callback") }
    let open = run.timelines.count - ended
    if open > 0, run.history.complete {
      let s = run.timelines.firstIndex { $0.terminals.isEmpty } ?? 0
      return .fail(observed: "\(open) streams never ended", run.counterexample(stream: s, "no terminal callback"))
    }
    return .pass(observed: "\(ended) streams, one terminal each")
  }
}

/// The terminal callbacks a scenario expects (onEnd, or onError with a code): the rule is the
/// one the code stands for (KSP-4.1, 2.3, 5.2, 6.2, 7.1, 8.1, 10.1).
public struct ExpectedOutcome: Check {
  public let match: OutcomeMatch
  public var rule: String { match.rule }
  public init(_ match: OutcomeMatch) { self.match = match }

  public var expected: String {
    var parts = [match.terminal == .end ? "onEnd" : "onError"]
    if let code = match.code { parts.append("code \(code)") }
    if let name = match.name { parts.append("name \(name)") }
    if let message = match.message { parts.append("message \"\(message)\"") }
    let share = match.fraction >= 1 ? "every stream" : "\(Int((match.fraction * 100).rounded())) % of streams"
    return parts.joined(separator: ", ") + " for \(share)"
  }

  func matches(_ t: StreamTimeline.Terminal?, _ h: History) -> Bool {
    switch (t, match.terminal) {
    case (.end?, .end): return true
    case (.error?, .error):
      guard let e = t?.error(h) else { return false }
      return (match.code.map { $0 == e.code } ?? true) && (match.name.map { $0 == e.name } ?? true)
        && (match.message.map { $0 == e.message } ?? true)
    default: return false
    }
  }

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    let total = run.timelines.count
    guard total > 0 else { return .untested("no stream was opened") }
    let matching = run.timelines.filter { matches($0.terminal?.0, h) }.count
    let needed = Int((Double(total) * match.fraction).rounded(.up))
    let observed = "\(matching) of \(total) streams"
    if matching >= max(needed, 1) { return .pass(observed: observed) }
    let s = run.timelines.firstIndex { !matches($0.terminal?.0, h) } ?? 0
    let got = run.timelines[s].terminal.map { $0.0.describe(h) } ?? "no terminal callback"
    return .fail(observed: observed, run.counterexample(stream: s, at: run.timelines[s].terminal?.t, got))
  }
}

/// KSP-4.1: `end(summary)` sends one `stream_end`, and `onEnd` gets the producer's summary.
public struct SummaryPreserved: Check {
  public let rule = "KSP-4.1"
  public let expected = "one stream_end per end(), onEnd receives the producer's summary"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var judged = 0
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      guard let finish = tl.finish, !finish.error, finish.result == .ok else { continue }
      judged += 1
      let ends = tl.messages.filter {
        h.wire[Int($0)].type == .streamEnd && h.wire[Int($0)].from == info.producer && !h.wire[Int($0)].isForged
      }
      if ends.count != 1 {
        return .fail(
          observed: "\(judged) streams ended by their producer",
          run.counterexample(stream: s, at: finish.t, "end() sent \(ends.count) stream_end messages"))
      }
      if case .end(let summary)? = tl.terminal?.0, let planned = info.plannedSummary, summary != planned {
        return .fail(
          observed: "\(judged) streams ended by their producer",
          run.counterexample(stream: s, at: tl.terminal?.t, "onEnd got another summary than the producer sent"))
      }
    }
    return judged == 0
      ? .untested("no producer ended a stream") : .pass(observed: "\(judged) streams ended by their producer")
  }
}

/// KSP-3.5: a chunk for a stream that is no longer active at the consumer (ended, failed, timed
/// out, cancelled) is dropped: no callback runs. Untested unless such a chunk was delivered.
public struct InactiveChunksDropped: Check {
  public let rule = "KSP-3.5"
  public let expected = "chunks for an ended stream dropped, no callback"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var late = 0
    for (s, tl) in run.timelines.enumerated() {
      let info = h.streams[s]
      let after = tl.deliveries.filter { d in
        let w = h.wire[Int(d.message)]
        return !d.beforeTerminal && d.to == info.consumer && w.type == .streamChunk && !w.creditFrame && w.problem < 0
      }
      late += after.count
      if !after.isEmpty && tl.chunksAfterTerminal > 0 {
        return .fail(
          observed: "\(late) late chunks delivered",
          run.counterexample(
            stream: s, message: after[0].message, at: after[0].t,
            "onChunk ran for a chunk that arrived after the stream ended"))
      }
    }
    return late == 0
      ? .untested("no chunk arrived for a stream that had ended") : .pass(observed: "\(late) late chunks dropped")
  }
}
