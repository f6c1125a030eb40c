import KenshoProtocol
import Testing

@testable import KenshoVerdict

/// The checks of a relay connection cut by a `disconnect` action, over hand-made histories.
@Suite("Disconnections: disconnect_recovery and reconnect pass, fail and are untested")
struct DisconnectCheckTests {
  static let ms: Int64 = 1_000_000

  /// One stream from consumer to producer opened at 0; the consumer is cut at 10 ms.
  static func cutHistory(back: Int64? = 20 * ms) -> (HistoryBuilder, Int32) {
    var b = HistoryBuilder()
    b.h.events.append(Entry(t: 0, event: .connected(b.consumer)))
    let s = b.stream(timeout: 100 * ms)
    b.chunk(s, 0, payload: 1, seen: 1, at: 5 * ms)
    b.h.events.append(Entry(t: 10 * ms, event: .disconnected(b.consumer)))
    if let back { b.h.events.append(Entry(t: back, event: .connected(b.consumer))) }
    return (b, s)
  }

  @Test("KSP-8.2 disconnect_recovery: a stream cut off that is reclaimed by its timeout, or ends, passes")
  func recoveryPasses() {
    var (b, s) = Self.cutHistory()
    b.timeout(s, at: 130 * Self.ms)
    let outcome = b.judge(DisconnectRecovery())
    #expect(outcome.isPass, "\(outcome)")
    var (ended, t) = Self.cutHistory()
    ended.end(t, at: 30 * Self.ms)
    #expect(ended.judge(DisconnectRecovery()).isPass)
  }

  @Test("KSP-8.2 disconnect_recovery: a cut stream that never ends, ends twice, or fails otherwise fails")
  func recoveryFails() {
    var (open, _) = Self.cutHistory()
    open.h.endedAt = 500 * Self.ms
    let never = open.judge(DisconnectRecovery())
    #expect(never.counterexample?.text.contains("never ended") == true, "\(never)")
    #expect(never.counterexample?.text.contains("consumer's relay connection was closed at 10.0 ms") == true)
    var (twice, s) = Self.cutHistory()
    twice.timeout(s, at: 130 * Self.ms)
    twice.end(s, at: 140 * Self.ms)
    #expect(twice.judge(DisconnectRecovery()).counterexample?.text.contains("ended 2 times") == true)
    var (wrong, t) = Self.cutHistory()
    wrong.h.errors.append(SerializedError(name: "Error", message: "bus gone", code: "BUS_DISPOSED"))
    wrong.h.events.append(Entry(t: 40 * Self.ms, event: .onError(t, error: Int32(wrong.h.errors.count - 1))))
    #expect(wrong.judge(DisconnectRecovery()).counterexample?.text.contains("BUS_DISPOSED") == true)
  }

  @Test("disconnect_recovery is untested without a cut, or when no stream was open across it")
  func recoveryUntested() {
    var none = HistoryBuilder()
    let s = none.stream()
    none.end(s, at: 1)
    #expect(none.judge(DisconnectRecovery()).isUntested)
    // The stream ended before the cut: nothing was open across it.
    var before = HistoryBuilder()
    let t = before.stream()
    before.end(t, at: 1)
    before.h.events.append(Entry(t: 10 * Self.ms, event: .disconnected(before.consumer)))
    #expect(before.judge(DisconnectRecovery()).isUntested)
  }

  @Test("KSP-3.2 is not judged on a stream open across a cut (the relay lost what the worker missed); KSP-3.4 is")
  func cutStreamsLeaveOrderedDelivery() {
    var (b, s) = Self.cutHistory()
    // Chunk 1 went out while the consumer was away and reached no one; chunk 2 was then
    // delivered past the gap, and onEnd came anyway.
    b.h.events.append(Entry(t: 12 * Self.ms, event: .emit(s, index: 1, payload: 2, result: .ok)))
    b.wire(.streamChunk, stream: s, from: b.producer, to: b.consumer, payload: 2, seq: 1, at: 12 * Self.ms)
    b.h.events.removeLast()  // no delivery
    b.chunk(s, 2, payload: 3, seen: 3, at: 25 * Self.ms)
    b.end(s, at: 30 * Self.ms)
    let record = RunRecord(history: b.h, metrics: Metrics())
    #expect(record.timelines[Int(s)].cutOff == 0)
    #expect(b.judge(OrderedDelivery()).isUntested)
    #expect(b.judge(SeqDelivery()).isFail)
  }

  @Test("KSP-3.4 with the producer cut off: a chunk lost before the relay saw it is a gap, not a numbering fault")
  func producerCutGapsInSeq() {
    func history(wireSeqs: [Int32]) -> HistoryBuilder {
      var b = HistoryBuilder()
      let s = b.stream(timeout: 100 * Self.ms)
      for k in 0..<3 {
        b.h.events.append(Entry(t: 1, event: .emit(s, index: Int32(k), payload: UInt64(k), result: .ok)))
      }
      b.h.events.append(Entry(t: 2 * Self.ms, event: .disconnected(b.producer)))
      for (i, seq) in wireSeqs.enumerated() {
        b.wire(
          .streamChunk, stream: s, from: b.producer, to: b.consumer, payload: UInt64(seq), seq: seq,
          at: Int64(5 + i) * Self.ms)
      }
      b.h.events.append(Entry(t: 3 * Self.ms, event: .connected(b.producer)))
      b.h.events.append(Entry(t: 5 * Self.ms, event: .onChunk(s, payload: 0)))
      b.timeout(s, at: 120 * Self.ms)
      return b
    }
    let gap = history(wireSeqs: [0, 2]).judge(SeqDelivery())
    #expect(gap.isPass, "\(gap)")
    #expect(history(wireSeqs: [0, 2, 1]).judge(SeqDelivery()).isFail)
    #expect(history(wireSeqs: [0, 7]).judge(SeqDelivery()).isFail, "a number beyond the chunks emitted")
  }

  @Test("KSP-4.1, KSP-2.1: a stream_end or stream_request lost before the relay saw it fails only without a cut")
  func lostBeforeTheRelay() {
    var b = HistoryBuilder()
    let s = b.stream(timeout: 100 * Self.ms)
    b.h.streams[Int(s)].plannedSummary = 0
    b.h.events.append(Entry(t: 1 * Self.ms, event: .finish(s, error: false, result: .ok)))
    b.timeout(s, at: 110 * Self.ms)
    #expect(b.judge(SummaryPreserved()).isFail, "no stream_end and no cut")
    #expect(b.judge(StreamRequests()).isFail, "no stream_request and no cut")
    b.h.events.insert(Entry(t: 0, event: .disconnected(b.producer)), at: 0)
    #expect(b.judge(SummaryPreserved()).isPass)
    #expect(b.judge(StreamRequests()).isFail, "the producer's cut does not excuse the consumer's request")
    b.h.events.insert(Entry(t: 0, event: .disconnected(b.consumer)), at: 0)
    #expect(b.judge(StreamRequests()).isUntested)
  }

  @Test("PERF reconnect: back within the bound, and a stream begun afterwards ends: passes")
  func reconnectPasses() {
    var (b, s) = Self.cutHistory()
    b.timeout(s, at: 130 * Self.ms)
    let later = b.stream()
    b.h.streams[Int(later)].openedAt = 25 * Self.ms
    b.end(later, at: 40 * Self.ms)
    let outcome = b.judge(Reconnect(within: 50 * Self.ms))
    #expect(outcome.isPass, "\(outcome)")
  }

  @Test("PERF reconnect: never back, back too late, or a later stream failing, fails with the worker named")
  func reconnectFails() {
    var (never, _) = Self.cutHistory(back: nil)
    never.h.endedAt = 900 * Self.ms
    let gone = never.judge(Reconnect(within: 50 * Self.ms))
    #expect(gone.counterexample?.text.contains("consumer was not back") == true, "\(gone)")
    let (late, _) = Self.cutHistory(back: 200 * Self.ms)
    let slow = late.judge(Reconnect(within: 50 * Self.ms))
    #expect(slow.counterexample?.text.contains("back only 190.0 ms after") == true, "\(slow)")
    var (broken, _) = Self.cutHistory()
    let later = broken.stream()
    broken.h.streams[Int(later)].openedAt = 25 * Self.ms
    broken.timeout(later, at: 140 * Self.ms)
    let failed = broken.judge(Reconnect(within: 50 * Self.ms))
    #expect(failed.counterexample?.text.contains("began after consumer came back") == true, "\(failed)")
  }

  @Test("reconnect is untested without a cut, or without a stream begun after the worker came back")
  func reconnectUntested() {
    #expect(HistoryBuilder().judge(Reconnect(within: 50 * Self.ms)).isUntested)
    var (b, s) = Self.cutHistory()
    b.timeout(s, at: 130 * Self.ms)
    #expect(b.judge(Reconnect(within: 50 * Self.ms)).isUntested)
  }
}
