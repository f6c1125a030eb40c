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
    metrics.growthPerStream = 50
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
