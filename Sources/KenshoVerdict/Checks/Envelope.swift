import KenshoProtocol

/// KSP-1.1: every message a bus under test sends is a well-formed KenshoMessage.
public struct WireValid: Check {
  public let rule = "KSP-1.1"
  public let expected = "every message a well-formed KenshoMessage"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var sent = 0
    var bad = 0
    var first: Int?
    for (i, w) in h.wire.enumerated() where !w.isForged {
      sent += 1
      if w.problem >= 0 {
        bad += 1
        if first == nil { first = i }
      }
    }
    if let u = h.undecodable.first {
      return .fail(
        observed: "\(bad + h.undecodable.count) of \(sent + h.undecodable.count) malformed",
        Counterexample(
          atMs: History.ms(u.t), text: "\(h.name(u.from)) sent something that is not a KenshoMessage: \(u.problem)"))
    }
    guard sent > 0 else { return .untested("no bus sent a message") }
    guard let first else { return .pass(observed: "0 of \(sent) malformed") }
    let w = h.wire[first]
    let why = Int(w.problem) < h.problems.count ? h.problems[Int(w.problem)] : "malformed"
    return .fail(
      observed: "\(bad) of \(sent) malformed",
      Counterexample(
        stream: w.stream >= 0 ? Int(w.stream) : nil, message: first, atMs: History.ms(w.t),
        text: "\(h.describe(Int32(first))): \(why)"))
  }
}

/// What the harness forged and delivered to a bus: the situation of KSP-1.2 and 1.3.
struct ForgedDeliveries {
  /// Deliveries of forged messages that break KSP-1.1, or that are addressed to someone else.
  static func find(_ h: History, misaddressed: Bool) -> [(message: Int32, to: History.Worker, t: Int64)] {
    var out: [(Int32, History.Worker, Int64)] = []
    for entry in h.events {
      guard case .delivered(let m, let to) = entry.event else { continue }
      let w = h.wire[Int(m)]
      guard w.isForged else { continue }
      let isMisaddressed = w.problem < 0 && w.to != to && w.to != WireRecord.broadcast
      let isMalformed = w.problem >= 0
      if misaddressed ? isMisaddressed : isMalformed { out.append((m, to, entry.t)) }
    }
    return out
  }
}

/// Whether a forged message reached a callback or disturbed its stream: a callback with the
/// forged payload, or the stream failing although its producer ended it.
func disturbance(_ run: RunRecord, forged: [(message: Int32, to: History.Worker, t: Int64)]) -> Counterexample? {
  let h = run.history
  let payloads = Set(forged.map { h.wire[Int($0.message)].payload })
  for (s, tl) in run.timelines.enumerated() {
    if let k = tl.chunks.firstIndex(where: { payloads.contains($0.payload) }),
      !tl.emitted.contains(where: { payloads.contains($0.payload) })
    {
      return run.counterexample(stream: s, at: tl.chunks[k].t, "onChunk ran with the payload of a forged message")
    }
  }
  for f in forged {
    let s = h.wire[Int(f.message)].stream
    guard s >= 0, Int(s) < run.timelines.count else { continue }
    let tl = run.timelines[Int(s)]
    if let finish = tl.finish, !finish.error, finish.result == .ok, tl.transportKeptOrder(h),
      case .error? = tl.terminal?.0
    {
      return run.counterexample(
        stream: Int(s), message: f.message, at: tl.terminal?.t,
        "failed with \(tl.terminal?.0.describe(h) ?? "") after the forged \(h.describe(f.message)), though its producer ended it"
      )
    }
  }
  return nil
}

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

/// KSP-1.4 (SHOULD): every message of a traced stream carries its request's `traceId`.
public struct TracePropagated: Check {
  public let rule = "KSP-1.4"
  public let expected = "every message of a traced stream carries its traceId"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    var traced = 0
    for (s, tl) in run.timelines.enumerated() where h.streams[s].traceId != nil {
      var any = false
      for m in tl.messages where !h.wire[Int(m)].isForged {
        let w = h.wire[Int(m)]
        any = true
        if w.traceOK == false {
          return .fail(
            observed: "\(traced) traced streams",
            run.counterexample(stream: s, message: m, at: w.t, "\(h.describe(m)) does not carry the stream's traceId"))
        }
      }
      if any { traced += 1 }
    }
    return traced == 0 ? .untested("no traced stream sent a message") : .pass(observed: "\(traced) traced streams")
  }
}
