import KenshoProtocol
import KenshoScenario
import Testing

@testable import KenshoVerdict

/// A check judged under a rule whose situation never arose passes vacuously: it is UNTESTED.
@Suite("The situation a rule speaks of (no vacuous pass)")
struct RuleSituationTests {
  static func record(_ b: HistoryBuilder) -> RunRecord { RunRecord(history: b.h, metrics: Metrics()) }

  @Test("KSP-8.1 and 8.2 need a producer that crashed or lost its relay connection")
  func producerGone() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.end(s, at: 1)
    #expect(RuleSituation.missing("KSP-8.2", in: Self.record(b))?.contains("no producer crashed") == true)
    #expect(RuleSituation.missing("KSP-8.1", in: Self.record(b)) != nil)
    var crashed = b
    crashed.h.events.append(Entry(t: 0, event: .crash(b.producer, announced: false)))
    #expect(RuleSituation.missing("KSP-8.2", in: Self.record(crashed)) == nil)
    var cut = b
    cut.h.events.append(Entry(t: 0, event: .disconnected(b.producer)))
    #expect(RuleSituation.missing("KSP-8.2", in: Self.record(cut)) == nil)
    // Rules without a situation of their own are left to their checks.
    #expect(RuleSituation.missing("KSP-9.1", in: Self.record(b)) == nil)
  }

  @Test("KSP-10.1 needs a bus disposed while one of its streams was open")
  func disposedWhileOpen() {
    var late = HistoryBuilder()
    let s = late.stream()
    late.end(s, at: 1)
    late.h.events.append(Entry(t: 5, event: .dispose(late.consumer)))
    #expect(RuleSituation.missing("KSP-10.1", in: Self.record(late))?.contains("no bus was disposed") == true)
    var open = HistoryBuilder()
    let o = open.stream()
    open.h.events.append(Entry(t: 5, event: .dispose(open.consumer)))
    open.end(o, at: 10)
    #expect(RuleSituation.missing("KSP-10.1", in: Self.record(open)) == nil)
    // Another worker's dispose does not count.
    var other = HistoryBuilder()
    let x = other.stream()
    other.h.events.append(Entry(t: 5, event: .dispose(2)))
    other.end(x, at: 10)
    #expect(RuleSituation.missing("KSP-10.1", in: Self.record(other)) != nil)
  }

  @Test("KSP-5.4: exactly_one_terminal passes only when a callback configured to throw ran")
  func throwingCallbackRan() {
    func judged(throwing: Set<CallbackKind>) -> Verdict {
      var b = HistoryBuilder()
      let s = b.stream()
      b.h.streams[Int(s)].throwingCallbacks = throwing
      b.end(s, at: 1)
      return Judge.judge(Expectation(.exactlyOneTerminal, rule: "KSP-5.4"), Self.record(b)).verdict
    }
    #expect(judged(throwing: [.onEnd]) == .pass)
    #expect(judged(throwing: []) == .untested)
    #expect(judged(throwing: [.onError]) == .untested)  // it ended with onEnd: onError never ran
    #expect(judged(throwing: [.onChunk]) == .untested)  // no chunk
    // Under its own rule (KSP-4.2) the same check needs nothing more.
    var b = HistoryBuilder()
    let s = b.stream()
    b.end(s, at: 1)
    #expect(Judge.judge(Expectation(.exactlyOneTerminal), Self.record(b)).verdict == .pass)
  }

  @Test("KSP-3.2 ordered_delivery with no chunk emitted is untested, not 0 chunks in order")
  func noChunkNoOrder() {
    var b = HistoryBuilder()
    let s = b.stream()
    b.end(s, at: 1)
    #expect(b.judge(OrderedDelivery()).isUntested)
  }
}
