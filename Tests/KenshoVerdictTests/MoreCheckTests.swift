import KenshoProtocol
import KenshoScenario
import Testing

@testable import KenshoVerdict

@Suite("Checks over a history: the rest pass, fail and are untested")
struct MoreCheckTests {
  @Test("KSP-4.2 exactly_one_terminal: a second terminal and a chunk after the end fail; no terminal is untested")
  func exactlyOneTerminal() {
    var b = HistoryBuilder()
    let s = b.stream()
    #expect(b.judge(ExactlyOneTerminal()).isUntested)
    b.end(s, at: 1)
    #expect(b.judge(ExactlyOneTerminal()).isPass)
    b.timeout(s, at: 2)
    #expect(b.judge(ExactlyOneTerminal()).counterexample?.text.contains("2 terminal callbacks") == true)
    var late = HistoryBuilder()
    let t = late.stream()
    late.end(t, at: 1)
    late.h.events.append(Entry(t: 2, event: .onChunk(t, payload: 5)))
    #expect(late.judge(ExactlyOneTerminal()).isFail)
  }

  @Test("outcome: the share of streams that end as expected, with the first stream that did not")
  func outcome() {
    var b = HistoryBuilder()
    let s = b.stream()
    let t = b.stream()
    b.end(s, at: 1)
    b.timeout(t, at: 2)
    let end = ExpectedOutcome(OutcomeMatch(terminal: .end))
    #expect(b.judge(end).counterexample?.text.contains("stream #1") == true)
    #expect(b.judge(ExpectedOutcome(OutcomeMatch(terminal: .end, fraction: 0.5))).isPass)
    let timeout = ExpectedOutcome(OutcomeMatch(terminal: .error, code: ErrorCode.streamTimeout, fraction: 0.5))
    #expect(timeout.rule == "KSP-6.2" && b.judge(timeout).isPass)
    #expect(HistoryBuilder().judge(end).isUntested)
  }

  @Test("KSP-4.1 summary_preserved: another summary, or two stream_end messages, fail")
  func summary() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.h.streams[Int(s)].plannedSummary = 0
    #expect(b.judge(SummaryPreserved()).isUntested)
    b.end(s, at: 1)
    #expect(b.judge(SummaryPreserved()).isPass)
    b.h.streams[Int(s)].plannedSummary = 42
    #expect(b.judge(SummaryPreserved()).isFail)
    b.h.streams[Int(s)].plannedSummary = 0
    b.wire(.streamEnd, stream: s, from: b.producer, to: b.consumer, at: 2)
    #expect(b.judge(SummaryPreserved()).counterexample?.text.contains("2 stream_end") == true)
  }

  @Test("KSP-2.1 stream_requests: one request per stream with {method, args}; a reused id or payload fails")
  func requests() {
    var b = HistoryBuilder()
    #expect(b.judge(StreamRequests()).isUntested)
    let s = b.stream()
    b.wire(.streamRequest, stream: s, from: b.consumer, to: b.producer, payload: 7, at: 0)
    #expect(b.judge(StreamRequests()).isPass)
    b.h.wire[0].payload = 8
    #expect(b.judge(StreamRequests()).counterexample?.text.contains("payload") == true)
    b.h.wire[0].payload = 7
    let t = b.stream()
    b.h.streams[Int(t)].streamId = b.h.streams[Int(s)].streamId
    b.wire(.streamRequest, stream: t, from: b.consumer, to: b.producer, payload: 7, at: 1)
    #expect(b.judge(StreamRequests()).counterexample?.text.contains("already used") == true)
  }

  @Test("KSP-2.4 handler_runs: untested without a repeated request; two runs for one stream fail")
  func handlerRuns() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.wire(.streamRequest, stream: s, from: b.consumer, to: b.producer, payload: 7, at: 0)
    b.h.events.append(Entry(t: 0, event: .handler(s, worker: b.producer)))
    #expect(b.judge(HandlerRuns(perStream: 1)).isUntested)
    #expect(b.judge(HandlerRuns(perStream: 1, rule: "KSP-2.2")).isPass)
    b.h.events.append(Entry(t: 1, event: .delivered(0, to: b.producer)))
    #expect(b.judge(HandlerRuns(perStream: 1)).isPass)
    b.h.events.append(Entry(t: 1, event: .handler(s, worker: b.producer)))
    #expect(b.judge(HandlerRuns(perStream: 1)).counterexample?.text.contains("ran 2 times") == true)
  }

  @Test("KSP-1.1 wire_valid: the first malformed message is the counterexample; forged ones do not count")
  func wireValid() {
    var b = HistoryBuilder()
    #expect(b.judge(WireValid()).isUntested)
    let s = b.stream()
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, at: 0, forged: true, problem: true)
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, at: 1)
    #expect(b.judge(WireValid()).isPass)
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, at: 2, problem: true)
    #expect(b.judge(WireValid()).counterexample?.message == 2)
    var u = HistoryBuilder()
    u.h.undecodable = [(1, "missing type", 5)]
    #expect(u.judge(WireValid()).isFail)
  }

  @Test("KSP-1.4 trace_propagated: a message of a traced stream without its traceId fails")
  func trace() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, at: 0)
    #expect(b.judge(TracePropagated()).isUntested)
    b.h.streams[Int(s)].traceId = "t"
    b.h.wire[0].traceOK = true
    #expect(b.judge(TracePropagated()).isPass)
    b.h.wire[0].traceOK = false
    #expect(b.judge(TracePropagated()).isFail)
    let record = RunRecord(history: b.h, metrics: Metrics())
    #expect(Judge.judge(Expectation(.tracePropagated), record).verdict == .nonStrict)
  }

  @Test("KSP-4.3 emitter_closed: a chunk sent after the end, or a late emit accepted, fails")
  func emitterClosed() {
    var b = HistoryBuilder()
    let s = b.stream()
    #expect(b.judge(EmitterClosed()).isUntested)
    b.end(s, at: 1)
    #expect(b.judge(EmitterClosed()).isPass)
    b.h.events.append(Entry(t: 2, event: .emitAfterFinish(s, result: .ok)))
    #expect(b.judge(EmitterClosed()).isFail)
    var c = HistoryBuilder()
    let t = c.stream()
    c.end(t, at: 1)
    c.wire(.streamChunk, stream: t, from: c.producer, to: c.consumer, at: 2)
    #expect(c.judge(EmitterClosed()).counterexample?.text.contains("after the stream's end") == true)
  }

  @Test("KSP-3.2 payload_sha256: differing digests fail; no binary stream is untested")
  func digest() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.end(s, at: 1)
    #expect(b.judge(PayloadDigest()).isUntested)
    b.h.digests = [0: ("a", "a")]
    #expect(b.judge(PayloadDigest()).isPass)
    b.h.digests = [0: ("a", "b")]
    #expect(b.judge(PayloadDigest()).isFail)
  }

  @Test("memory checks: unsupported when not measured, untested without work, a leak fails with its slope")
  func memory() {
    var b = HistoryBuilder()
    b.h.capabilities.remove(.memory)
    if case .unsupported(let why) = b.judge(MemoryReturns(maxBytes: 10)) {
      #expect(why == "memory is not measured")
    } else {
      Issue.record("expected unsupported")
    }
    var metrics = Metrics()
    metrics.memorySource = "thread"
    metrics.retainedBytes = 100
    metrics.growthPerStreamFit = GrowthFit(slope: 50, margin: 4, points: 10, fromWork: 100, toWork: 200)
    let record = RunRecord(history: HistoryBuilder().h, metrics: metrics)
    if case .untested = MemoryReturns(maxBytes: 10).judge(record) {} else { Issue.record("expected untested") }
    metrics.streamsCompleted = 5
    let worked = RunRecord(history: HistoryBuilder().h, metrics: metrics)
    if case .fail = MemoryReturns(maxBytes: 10).judge(worked) {} else { Issue.record("expected fail") }
    if case .fail = NoLeak(perStream: 16, perChunk: nil).judge(worked) {} else { Issue.record("expected a leak") }
    if case .pass = NoLeak(perStream: 64, perChunk: nil).judge(worked) {} else { Issue.record("expected no leak") }
    if case .untested = NoLeak(perStream: nil, perChunk: 1).judge(worked) {} else { Issue.record("no chunk slope") }
  }
}

@Suite("KSP-3.3 and KSP-4.4 checks")
struct ActivityAndEndTests {
  @Test("KSP-3.3 activity_refresh passes when chunks keep a stream alive past its timeout")
  func refreshPasses() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    for k in 0..<5 { b.chunk(s, Int32(k), payload: 1, seen: 1, at: Int64(k) * 800) }
    b.end(s, at: 4_000)
    #expect(b.judge(ActivityRefresh()).isPass)
  }

  @Test("KSP-3.3 activity_refresh fails when a chunk from the producer did not refresh the stream")
  func refreshIgnored() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 800)
    b.timeout(s, at: 1_050)
    let outcome = b.judge(ActivityRefresh())
    #expect(outcome.counterexample?.text.contains("that message did not refresh it") == true, "\(outcome)")
  }

  @Test("KSP-3.3 activity_refresh fails when a chunk from another worker kept the stream alive")
  func foreignCounted() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.wire(.streamChunk, stream: s, from: 2, to: b.consumer, at: 700, forged: true)
    b.timeout(s, at: 1_750)
    let outcome = b.judge(ActivityRefresh())
    #expect(outcome.counterexample?.text.contains("was counted as activity") == true, "\(outcome)")
    #expect(outcome.counterexample?.message == 1)
    // The same stream timing out in its window from the real activity passes.
    var ok = HistoryBuilder()
    let t = ok.stream(timeout: 1_000)
    ok.h.sweepInterval = 100
    ok.chunk(t, 0, payload: 1, seen: 1, at: 0)
    ok.wire(.streamChunk, stream: t, from: 2, to: ok.consumer, at: 700, forged: true)
    ok.timeout(t, at: 1_050)
    #expect(ok.judge(ActivityRefresh()).isPass)
  }

  @Test("KSP-3.3 activity_refresh fails when a misaddressed chunk kept a stream open to the end of the run")
  func misaddressedKeptOpen() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.h.sweepInterval = 100
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.wire(.streamChunk, stream: s, from: b.producer, to: 2, at: 900, forged: true, deliverTo: b.consumer)
    b.h.endedAt = 1_500
    b.h.complete = false
    #expect(b.judge(ActivityRefresh()).counterexample?.text.contains("still open") == true)
  }

  @Test("KSP-3.3 activity_refresh is untested when no timeout depended on what counts")
  func refreshUntested() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 1_000)
    b.chunk(s, 0, payload: 1, seen: 1, at: 10)
    b.end(s, at: 20)
    #expect(b.judge(ActivityRefresh()).isUntested)
    #expect(HistoryBuilder().judge(ActivityRefresh()).isUntested)
  }

  @Test("KSP-4.4 end_after_chunks passes when the end carries the count and onEnd waits for an overtaken chunk")
  func endWaits() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    // Chunk 1 is delayed: the end reaches the consumer first, onEnd waits for it.
    b.h.events.append(Entry(t: 1, event: .emit(s, index: 1, payload: 2, result: .ok)))
    let late = b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, seq: 1, at: 1, fault: .dropped)
    b.h.events.append(Entry(t: 2, event: .finish(s, error: false, result: .ok)))
    b.wire(.streamEnd, stream: s, from: b.producer, to: b.consumer, seq: 2, at: 2)
    b.h.events.append(Entry(t: 5, event: .delivered(late, to: b.consumer)))
    b.h.events.append(Entry(t: 5, event: .onChunk(s, payload: 2)))
    b.h.events.append(Entry(t: 5, event: .onEnd(s, summary: 0)))
    let outcome = b.judge(EndAfterChunks())
    #expect(outcome.isPass)
    if case .pass(let observed) = outcome { #expect(observed.contains("1 of them reached the consumer before")) }
  }

  @Test("KSP-4.4 end_after_chunks fails on onEnd before a missing chunk, and on an end without the count")
  func endTooSoon() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    b.chunk(s, 1, payload: 2, seen: nil, at: 1, fault: .dropped)
    b.h.events.append(Entry(t: 2, event: .finish(s, error: false, result: .ok)))
    b.wire(.streamEnd, stream: s, from: b.producer, to: b.consumer, seq: 2, at: 2)
    b.h.events.append(Entry(t: 2, event: .onEnd(s, summary: 0)))
    #expect(b.judge(EndAfterChunks()).counterexample?.text.contains("onEnd after 1 of 2 chunks") == true)
    var c = HistoryBuilder()
    let t = c.stream()
    c.chunk(t, 0, payload: 1, seen: 1, at: 0)
    c.end(t, at: 1)  // no metadata.seq on the end
    #expect(c.judge(EndAfterChunks()).counterexample?.text.contains("carries no metadata.seq") == true)
    let record = RunRecord(history: c.h, metrics: Metrics())
    #expect(Judge.judge(Expectation(.endAfterChunks), record).verdict == .nonStrict)
  }

  @Test("KSP-4.4 end_after_chunks is untested when no producer ended a stream")
  func endUntested() {
    var b = HistoryBuilder()
    let s = b.stream(finish: .hang)
    b.chunk(s, 0, payload: 1, seen: 1, at: 0)
    #expect(b.judge(EndAfterChunks()).isUntested)
  }
}

@Suite("KSP-9.2 leak verdict: a line through the later half of the work, with its margin")
struct LeakFitTests {
  /// Readings every 100 units of work from 0 to 10 000: `bytes(work)` plus a scatter of ±`noise`.
  func readings(noise: Double = 0, _ bytes: (Double) -> Double) -> [GrowthFit.Reading] {
    (0...100).map { i in
      let work = Double(i) * 100
      return GrowthFit.Reading(work: work, bytes: bytes(work) + (i % 2 == 0 ? noise : -noise))
    }
  }

  func judge(_ fit: GrowthFit?, limit: Double = 16, floor: Int = 0) -> CheckOutcome {
    var metrics = Metrics()
    metrics.memorySource = "test"
    metrics.memoryNoiseFloorBytes = floor
    metrics.streamsCompleted = 10_000
    metrics.growthPerStreamFit = fit
    return NoLeak(perStream: limit, perChunk: nil).judge(RunRecord(history: HistoryBuilder().h, metrics: metrics))
  }

  @Test("a steady leak is seen at its full rate, with a margin near zero when readings do not scatter")
  func steadyLeak() throws {
    let fit = try #require(GrowthFit.laterHalf(readings { 200 * $0 }))
    #expect(abs(fit.slope - 200) < 1e-9)
    #expect(fit.margin < 1e-6)
    #expect(fit.fromWork == 5_000 && fit.toWork == 10_000 && fit.points == 51)
    guard case .fail(_, let counterexample) = judge(fit) else {
      Issue.record("a 200 B/stream leak must fail")
      return
    }
    #expect(counterexample.text.contains("200.0 ± 0.0 B per stream over streams 5000 to 10000"))
  }

  @Test("a warm-up that levels off is not a leak: the later half is flat")
  func warmUpLevelsOff() throws {
    // 300 kB grow over the first 3 000 streams (a runtime's caches), then nothing.
    let fit = try #require(GrowthFit.laterHalf(readings(noise: 2_000) { min($0, 3_000) * 100 }))
    #expect(abs(fit.slope) < 1)
    if case .pass = judge(fit) {} else { Issue.record("a levelled warm-up must pass, got \(judge(fit))") }
    // The same readings through one line blame the warm-up on the streams.
    let whole = try #require(GrowthFit.fit(readings(noise: 2_000) { min($0, 3_000) * 100 }))
    #expect(whole.slope - whole.margin > 16)
  }

  @Test("a slope whose margin straddles the bound is inconclusive (UNTESTED), not a verdict either way")
  func scatterIsInconclusive() throws {
    // 14 B/stream under a scatter of ±60 kB: the margin is wider than the distance to 16.
    let fit = try #require(GrowthFit.laterHalf(readings(noise: 60_000) { 14 * $0 }))
    #expect(fit.margin > 2)
    guard case .untested(let why) = judge(fit) else {
      Issue.record("expected inconclusive, got \(judge(fit))")
      return
    }
    #expect(why.hasPrefix("inconclusive:"))
    // With the scatter gone, 14 B/stream passes and 18 fails.
    if case .pass = judge(GrowthFit.laterHalf(readings { 14 * $0 })) {} else { Issue.record("14 ≤ 16 must pass") }
    if case .fail = judge(GrowthFit.laterHalf(readings { 18 * $0 })) {} else { Issue.record("18 > 16 must fail") }
  }

  @Test("streams closing at the end of a run neither hide a leak nor make one: open streams are set apart")
  func openStreamsSetApart() throws {
    // 200 streams open until the last 200 of 10 000 close; what they hold is not in proportion
    // to their number (the last ones open hold big buffers); 20 B per stream leaked, or none.
    func run(leak: Double) -> [GrowthFit.Reading] {
      (0...200).map { i in
        let work = Double(i) * 50
        let open = min(200, 10_000 - work)
        let held = 1_000 * open + (open > 0 && open < 200 ? 2_400_000 : 0)
        return GrowthFit.Reading(work: work, open: open, bytes: leak * work + held)
      }
    }
    let leaking = try #require(GrowthFit.laterHalf(run(leak: 20)))
    #expect(abs(leaking.slope - 20) < 1e-6, "\(leaking)")
    if case .fail = judge(leaking) {} else { Issue.record("20 B/stream must fail: \(judge(leaking))") }
    let sound = try #require(GrowthFit.laterHalf(run(leak: 0)))
    #expect(abs(sound.slope) < 1e-6, "\(sound)")
    if case .pass = judge(sound) {} else { Issue.record("no leak must pass: \(judge(sound))") }
    // Work alone: what the closing streams held throws the line off.
    let blind = try #require(
      GrowthFit.laterHalf(run(leak: 0).map { GrowthFit.Reading(work: $0.work, bytes: $0.bytes) }))
    #expect(abs(blind.slope) > 16, "\(blind)")
  }

  @Test("too few readings in the later half: UNTESTED, naming the sampling")
  func tooFewReadings() {
    let few = (0...5).map { GrowthFit.Reading(work: Double($0), bytes: Double($0) * 10) }
    #expect(GrowthFit.laterHalf(few) == nil, "3 readings in the later half")
    #expect(GrowthFit.laterHalf((1...5).map { GrowthFit.Reading(work: 7, bytes: Double($0)) }) == nil)
    guard case .untested(let why) = judge(nil) else {
      Issue.record("expected untested")
      return
    }
    #expect(why.contains("sampleEveryMs"))
  }
}

@Suite("KSP-9.3 lower bounds on memory")
struct MemoryLowerBoundTests {
  func judge(source: String, peak: Int) -> CheckOutcome {
    var metrics = Metrics()
    metrics.memorySource = source
    metrics.peakBytes = peak
    return MetricBound(.peakBytes, min: 400_000, max: nil, rule: "KSP-9.3").judge(
      RunRecord(history: HistoryBuilder().h, metrics: metrics))
  }

  @Test("in process the inbox is measured: a lower bound passes above it and fails below")
  func inProcess() {
    if case .pass = judge(source: "thread", peak: 500_000) {} else { Issue.record("expected pass") }
    if case .fail = judge(source: "thread", peak: 1_000) {} else { Issue.record("expected fail") }
  }

  @Test("through an adapter the inbox is the harness's: UNTESTED, saying so, never a pass or a lack")
  func throughAdapter() {
    guard case .untested(let why) = judge(source: "kensho-js: heap in use after a collection", peak: 1_000) else {
      Issue.record("expected untested")
      return
    }
    #expect(why.contains("the harness holds"))
  }
}
