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
      #expect(why == "memory is not measured through an adapter")
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
