import KenshoProtocol
import KenshoScenario
import Testing

@testable import KenshoVerdict

/// Builds histories by hand: each check is shown passing, failing and untested on the
/// smallest history that says so.
struct HistoryBuilder {
  var h = History()
  let consumer: Int32 = 0
  let producer: Int32 = 1

  init() {
    h.workers = ["consumer", "producer", "intruder"]
    h.scenarioWorkers = 3
  }

  mutating func stream(timeout: Int64 = 1_000, finish: PlannedFinish = .end) -> Int32 {
    var info = StreamInfo(
      group: 0, consumer: consumer, producer: producer, method: "m", requestPayload: 7, timeout: timeout,
      plannedChunks: 3, plannedFinish: finish)
    info.streamId = "s\(h.streams.count)"
    h.streams.append(info)
    let s = Int32(h.streams.count - 1)
    h.events.append(Entry(t: 0, event: .opened(s)))
    return s
  }

  /// A message on the wire, delivered to its target unless `fault` says otherwise.
  @discardableResult
  mutating func wire(
    _ type: MessageType, stream s: Int32, from: Int32, to: Int32, payload: UInt64 = 0, seq: Int32 = -1, at t: Int64,
    fault: FaultDecision? = nil, forged: Bool = false, problem: Bool = false, deliverTo: Int32? = nil
  ) -> Int32 {
    var problemIndex: Int32 = -1
    if problem {
      h.problems.append("bad")
      problemIndex = Int32(h.problems.count - 1)
    }
    let m = Int32(h.wire.count)
    h.wire.append(
      WireRecord(
        type: type, from: from, to: to, stream: s, seq: seq, payload: payload, problem: problemIndex, error: -1,
        messageId: UInt64(m), traceOK: nil, creditFrame: false, origin: forged ? .forged("test") : .bus, t: t))
    h.events.append(Entry(t: t, event: .sent(m)))
    if let fault { h.events.append(Entry(t: t, event: .fault(m, fault))) }
    if fault != .dropped { h.events.append(Entry(t: t, event: .delivered(m, to: deliverTo ?? to))) }
    return m
  }

  /// The producer emits chunk `k` with payload `p`, it crosses the wire, and onChunk sees `seen`.
  mutating func chunk(
    _ s: Int32, _ k: Int32, payload p: UInt64, seen: UInt64?, at t: Int64, fault: FaultDecision? = nil
  ) {
    h.events.append(Entry(t: t, event: .emit(s, index: k, payload: p, result: .ok)))
    wire(.streamChunk, stream: s, from: producer, to: consumer, payload: p, seq: k, at: t, fault: fault)
    if let seen { h.events.append(Entry(t: t, event: .onChunk(s, payload: seen))) }
  }

  mutating func end(_ s: Int32, at t: Int64, delivered: Bool = true) {
    h.events.append(Entry(t: t, event: .finish(s, error: false, result: .ok)))
    wire(.streamEnd, stream: s, from: producer, to: consumer, at: t, fault: delivered ? nil : .dropped)
    if delivered { h.events.append(Entry(t: t, event: .onEnd(s, summary: 0))) }
  }

  mutating func timeout(_ s: Int32, at t: Int64) {
    h.errors.append(SerializedError(name: "TimeoutError", message: "idle", code: ErrorCode.streamTimeout))
    h.events.append(Entry(t: t, event: .onError(s, error: Int32(h.errors.count - 1))))
  }

  func judge(_ check: some Check) -> CheckOutcome { check.judge(RunRecord(history: h, metrics: Metrics())) }
}

extension CheckOutcome {
  var isPass: Bool { if case .pass = self { true } else { false } }
  var isFail: Bool { if case .fail = self { true } else { false } }
  var isUntested: Bool { if case .untested = self { true } else { false } }
  var counterexample: Counterexample? { if case .fail(_, let c) = self { c } else { nil } }
}

@Suite("Checks over a history: each can pass, fail and be untested")
struct CheckTests {
  @Test("KSP-3.2 ordered_delivery passes when onChunk sees every chunk received, in order")
  func orderedPasses() {
    var b = HistoryBuilder()
    let s = b.stream()
    for k in 0..<3 { b.chunk(s, Int32(k), payload: UInt64(10 + k), seen: UInt64(10 + k), at: Int64(k)) }
    b.end(s, at: 5)
    #expect(b.judge(OrderedDelivery()).isPass)
  }

  @Test("KSP-3.2 ordered_delivery fails on a run that delivered 4 of 5 chunks then onEnd (a false OK before)")
  func orderedFailsOnMissingLastChunk() {
    var b = HistoryBuilder()
    let s = b.stream()
    for k in 0..<4 { b.chunk(s, Int32(k), payload: UInt64(k), seen: UInt64(k), at: Int64(k)) }
    // The fifth chunk is accepted by the emitter but never goes out.
    b.h.events.append(Entry(t: 4, event: .emit(s, index: 4, payload: 4, result: .ok)))
    b.end(s, at: 5)
    let outcome = b.judge(OrderedDelivery())
    #expect(outcome.isFail)
    #expect(outcome.counterexample?.text.contains("onEnd after 4 chunks; the producer emitted 5") == true)
  }

  @Test("KSP-3.2 ordered_delivery fails on a changed payload and names the chunk")
  func orderedFailsOnChangedPayload() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.chunk(s, 1, payload: 2, seen: 99, at: 1)
    let outcome = b.judge(OrderedDelivery())
    #expect(outcome.counterexample?.text.contains("onChunk 1") == true)
  }

  @Test("KSP-3.2 ordered_delivery is untested when faults touched every stream (a vacuous pass before)")
  func orderedUntestedUnderFaults() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0, fault: .duplicated)
    #expect(b.judge(OrderedDelivery()).isUntested)
    #expect(HistoryBuilder().judge(OrderedDelivery()).isUntested)
  }

  @Test("KSP-3.1 chunks_addressed fails when chunks go to the producer itself (a false OK before)")
  func chunksToSelf() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.h.events.append(Entry(t: 0, event: .emit(s, index: 0, payload: 1, result: .ok)))
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.producer, payload: 1, seq: 0, at: 0)
    let outcome = b.judge(ChunksAddressed())
    #expect(outcome.counterexample?.text.contains("addressed to producer") == true)
    var ok = HistoryBuilder()
    let t = ok.stream()
    ok.chunk(t, 0, payload: 1, seen: 1, at: 0)
    #expect(ok.judge(ChunksAddressed()).isPass)
    #expect(HistoryBuilder().judge(ChunksAddressed()).isUntested)
  }

  @Test("KSP-6.2 timeout_window: credit frames and forged chunks are no activity (a false FAILED before)")
  func timeoutIgnoresForeignActivity() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 100)
    // A misaddressed forgery and a chunk from an intruder arrive later: not activity (KSP-3.3).
    b.wire(.streamChunk, stream: s, from: b.producer, to: 2, at: 600, forged: true, deliverTo: b.consumer)
    b.wire(.streamChunk, stream: s, from: 2, to: b.consumer, at: 700, forged: true)
    b.timeout(s, at: 1_150)
    #expect(b.judge(TimeoutWindow()).isPass)
  }

  @Test("KSP-6.2 timeout_window fails on a timeout before the stream was idle long enough")
  func timeoutTooEarly() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 500)
    b.timeout(s, at: 1_200)
    let outcome = b.judge(TimeoutWindow())
    #expect(outcome.counterexample?.text.contains("timed out after 0.0007 ms idle") == true)
  }

  @Test(
    "KSP-6.2 timeout_window in real time: a timeout seen up to the slack after timeout + sweep passes, later fails; the earliest bound stays exact"
  )
  func timeoutRealTimeSlack() {
    func judged(timeoutAt t: Int64, slack: Int64) -> CheckOutcome {
      var b = HistoryBuilder()
      let s = b.stream(timeout: 1_000)
      b.h.sweepInterval = 100
      b.h.observationSlack = slack
      b.chunk(s, 0, payload: 1, seen: 1, at: 0)
      b.timeout(s, at: t)
      return b.judge(TimeoutWindow())
    }
    // Virtual time: one clock, no slack (a false OK would hide a late sweep).
    #expect(judged(timeoutAt: 1_100, slack: 0).isPass)
    #expect(judged(timeoutAt: 1_101, slack: 0).counterexample != nil)
    // Real time: seen 4 later than timeout + sweep, within a slack of 50 (the false FAILED the
    // reference got on a loaded machine); past the slack, a late timeout all the same.
    #expect(judged(timeoutAt: 1_104, slack: 50).isPass)
    let late = judged(timeoutAt: 1_151, slack: 50)
    #expect(late.counterexample?.text.contains("for real time") == true, "\(late)")
    // Too early is too early, whatever the slack.
    #expect(judged(timeoutAt: 1_000, slack: 50).counterexample != nil)
  }

  @Test("KSP-6.2 timeout_window fails a stream left idle past timeout + sweep at the deadline (ERROR before)")
  func timeoutNeverFired() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.h.endedAt = 5_000
    b.h.complete = false
    #expect(b.judge(TimeoutWindow()).counterexample?.text.contains("never timed out") == true)
    var quiet = HistoryBuilder()
    let q = quiet.stream()
    quiet.end(q, at: 1)
    #expect(quiet.judge(TimeoutWindow()).isUntested)
  }

  @Test("KSP-7.2 cancel_stops_producer is untested when no cancel reached a producer (a false OK before)")
  func cancelUntested() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.end(s, at: 1)
    #expect(b.judge(CancelStopsProducer()).isUntested)
  }

  @Test("KSP-7.2 cancel_stops_producer fails when the emitter accepts a chunk after the cancel arrived")
  func cancelIgnored() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.wire(.streamCancel, stream: s, from: b.consumer, to: b.producer, at: 1)
    b.h.events.append(Entry(t: 2, event: .emit(s, index: 1, payload: 2, result: .ok)))
    #expect(b.judge(CancelStopsProducer()).isFail)
    var good = HistoryBuilder()
    let t = good.stream()
    good.wire(.streamCancel, stream: t, from: good.consumer, to: good.producer, at: 1)
    good.h.events.append(Entry(t: 2, event: .emit(t, index: 0, payload: 2, result: .cancelled)))
    #expect(good.judge(CancelStopsProducer()).isPass)
  }

  @Test("KSP-7.3 foreign_cancel_ignored: untested without a forged cancel, fails when the producer obeys one")
  func foreignCancel() {
    var b = HistoryBuilder()
    let s = b.stream()
    #expect(b.judge(ForeignCancelIgnored()).isUntested)
    b.wire(.streamCancel, stream: s, from: 2, to: b.producer, at: 1, forged: true)
    b.h.events.append(Entry(t: 2, event: .emit(s, index: 0, payload: 2, result: .cancelled)))
    #expect(b.judge(ForeignCancelIgnored()).isFail)
  }

  @Test("KSP-1.2 malformed_dropped is untested unless a malformed message was delivered (a false OK before)")
  func malformed() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    #expect(b.judge(MalformedDropped()).isUntested)
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, payload: 77, at: 1, forged: true, problem: true)
    #expect(b.judge(MalformedDropped()).isPass)
    b.h.events.append(Entry(t: 1, event: .onChunk(s, payload: 77)))
    #expect(b.judge(MalformedDropped()).isFail)
  }

  @Test("KSP-1.3 misaddressed_ignored fails when a chunk for another worker reaches onChunk")
  func misaddressed() {
    var b = HistoryBuilder()
    let s = b.stream()
    #expect(b.judge(MisaddressedIgnored()).isUntested)
    b.wire(.streamChunk, stream: s, from: b.producer, to: 2, payload: 55, at: 1, forged: true, deliverTo: b.consumer)
    #expect(b.judge(MisaddressedIgnored()).isPass)
    b.h.events.append(Entry(t: 1, event: .onChunk(s, payload: 55)))
    #expect(b.judge(MisaddressedIgnored()).isFail)
  }

  @Test("KSP-9.1 active_streams_empty: a failed stats answer is an error, never zero entries (a false OK before)")
  func statsFailure() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.end(s, at: 1)
    b.h.finalStats = [0: .read(activeStreams: 0, emitters: 0), 1: .failed("no answer")]
    if case .error = b.judge(ActiveStreamsEmpty()) {} else { Issue.record("expected an error") }
    b.h.finalStats = [0: .read(activeStreams: 1, emitters: 0), 1: .read(activeStreams: 0, emitters: 0)]
    #expect(b.judge(ActiveStreamsEmpty()).isFail)
    b.h.finalStats = [0: .read(activeStreams: 0, emitters: 0), 1: .read(activeStreams: 0, emitters: 0)]
    #expect(b.judge(ActiveStreamsEmpty()).isPass)
    #expect(HistoryBuilder().judge(ActiveStreamsEmpty()).isUntested)
  }

  @Test("KSP-3.4 seq_delivery: repeats reaching onChunk under duplication are non-strict, in order passes")
  func seqDelivery() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0, fault: .duplicated)
    b.h.events.append(Entry(t: 0, event: .onChunk(s, payload: 1)))
    #expect(b.judge(SeqDelivery()).isFail)
    var ok = HistoryBuilder()
    let t = ok.stream()
    ok.chunk(t, 0, payload: 1, seen: 1, at: 0, fault: .duplicated)
    #expect(ok.judge(SeqDelivery()).isPass)
    #expect(HistoryBuilder().judge(SeqDelivery()).isUntested)
  }

  @Test("a broken SHOULD rule is NON-STRICT, never FAILED; untested is reported as UNTESTED")
  func levels() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0, fault: .duplicated)
    b.h.events.append(Entry(t: 0, event: .onChunk(s, payload: 1)))
    let record = RunRecord(history: b.h, metrics: Metrics())
    #expect(Judge.judge(Expectation(.seqDelivery), record).verdict == .nonStrict)
    #expect(Judge.judge(Expectation(.cancelStopsProducer), record).verdict == .untested)
  }

  @Test("rule grades: a rule no check decided is UNTESTED; one failure anywhere is FAILED")
  func ruleGrades() {
    let pass = CheckResult(name: "a", rule: "KSP-3.2", level: .must, verdict: .pass, expected: "", observed: "")
    var fail = pass
    fail.verdict = .fail
    var untested = pass
    untested.verdict = .untested
    untested.rule = "KSP-7.2"
    let grades = Dictionary(
      uniqueKeysWithValues: RuleGrade.grade([("x", pass), ("y", fail), ("z", untested)]).map { ($0.rule, $0.verdict) })
    #expect(grades["KSP-3.2"] == .fail)
    #expect(grades["KSP-7.2"] == .untested)
    #expect(grades["KSP-1.1"] == .untested)
  }

  @Test("I-JSON equality: integers beyond 2^53 equal the double they round to; key order is free")
  func ijson() {
    let big: JSONValue = .int(9_007_199_254_740_993)
    #expect(big.ijsonEquals(.double(9_007_199_254_740_992)))
    #expect(big.ijsonFingerprint == JSONValue.double(9_007_199_254_740_992).ijsonFingerprint)
    #expect(!JSONValue.int(3).ijsonEquals(.int(4)))
    let a: JSONValue = .object(["x": 1, "y": [1, 2]])
    let b: JSONValue = .object(["y": [1, 2], "x": 1.0])
    #expect(a.ijsonEquals(b) && a.ijsonFingerprint == b.ijsonFingerprint)
    #expect(JSONValue.double(-0.0).ijsonFingerprint == JSONValue.int(0).ijsonFingerprint)
    #expect(JSONValue.string("1").ijsonFingerprint != JSONValue.int(1).ijsonFingerprint)
  }

  @Test("I-JSON fingerprints: equal values agree and unequal ones differ, over 20 000 seeded random pairs")
  func ijsonFingerprintProperty() {
    var rng = SeededValues(seed: 32)
    var distinct = 0
    for _ in 0..<20_000 {
      let a = rng.value(depth: 3)
      // The same value rebuilt: members reinserted in another order, integers as doubles.
      let same = SeededValues.rebuilt(a)
      #expect(a.ijsonEquals(same) && a.ijsonFingerprint == same.ijsonFingerprint, "\(a)")
      let b = rng.value(depth: 3)
      if !a.ijsonEquals(b) {
        distinct += 1
        #expect(a.ijsonFingerprint != b.ijsonFingerprint, "collision: \(a) and \(b)")
      }
    }
    #expect(distinct > 10_000)
  }
}

/// Random JSON values from a seed, for property tests.
struct SeededValues {
  var state: UInt64
  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func value(depth: Int) -> JSONValue {
    switch next() % (depth > 0 ? 7 : 5) {
    case 0: return .null
    case 1: return .bool(next() % 2 == 0)
    case 2: return .int(Int64(bitPattern: next()) % 1000)
    case 3: return .double(Double(next() % 10_000) / 8)
    case 4: return .string(String((0..<Int(next() % 6)).map { _ in "ab\u{e9}\u{1F600}"[Int(next() % 4)] }))
    case 5: return .array((0..<Int(next() % 4)).map { _ in value(depth: depth - 1) })
    default:
      var o: [String: JSONValue] = [:]
      for _ in 0..<Int(next() % 4) { o[["a", "b", "ab", "\u{e9}"][Int(next() % 4)]] = value(depth: depth - 1) }
      return .object(o)
    }
  }

  static func rebuilt(_ v: JSONValue) -> JSONValue {
    switch v {
    case .int(let i): return .double(Double(i))
    case .array(let a): return .array(a.map(rebuilt))
    case .object(let o):
      var copy: [String: JSONValue] = [:]
      for key in o.keys.sorted().reversed() { copy[key] = rebuilt(o[key] ?? .null) }
      return .object(copy)
    default: return v
    }
  }
}

extension String {
  fileprivate subscript(_ i: Int) -> Character { self[index(startIndex, offsetBy: i)] }
}
