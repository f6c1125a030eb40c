import Foundation
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Testing

@testable import KenshoHarness

@Suite("History recorder")
struct HistoryRecorderTests {
  func recorder() -> HistoryRecorder {
    HistoryRecorder(
      scenario: Scenario(name: "t", agents: [], workload: [], expect: []), totalStreams: 1,
      sweepInterval: 60_000_000_000, meter: { nil })
  }

  func request(_ id: String, trace: String?) -> KenshoMessage {
    KenshoMessage(
      messageId: "m-\(id)", sourceWorker: "consumer", targetWorker: "producer", type: .streamRequest,
      payload: ["method": "m", "args": .null], streamId: id, traceId: trace)
  }

  @Test("a message seen before its stream opened joins the stream when it opens, trace judged then (relay)")
  func lateStreamIdJoins() {
    let r = recorder()
    let info = StreamInfo(
      group: 0, consumer: r.workerId("consumer"), producer: r.workerId("producer"), method: "m",
      requestPayload: JSONValue.null.ijsonFingerprint, timeout: 0, plannedChunks: 0, plannedFinish: .end)
    let early = r.sent(request("s-1", trace: "t-1"), origin: .bus, at: 1)
    let wrongTrace = r.sent(request("s-1", trace: "t-9"), origin: .bus, at: 2)
    let stranger = r.sent(request("s-2", trace: nil), origin: .bus, at: 3)
    let index = r.addStream(info)
    r.opened(index, streamId: "s-1", traceId: "t-1", at: 4)
    let h = r.finish(stats: [:], capabilities: [], endedAt: 5, complete: true, digests: [:])
    #expect(h.wire[Int(early)].stream == index)
    #expect(h.wire[Int(early)].traceOK == true)
    #expect(h.wire[Int(wrongTrace)].traceOK == false)
    #expect(h.wire[Int(stranger)].stream == WireRecord.none, "a stream id never opened stays without a stream")
  }
}
