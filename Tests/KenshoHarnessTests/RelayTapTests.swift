import Foundation
import KenshoBus
import KenshoProtocol
import KenshoRelay
import KenshoScenario
import KenshoVerdict
import NIOCore
import Testing

@testable import KenshoHarness

/// An adapter's wire at the embedded relay: what RelayTap makes of each frame and each forward.
@Suite("Relay tap")
struct RelayTapTests {
  let recorder = HistoryRecorder(
    scenario: Scenario(name: "t", agents: [], workload: [], expect: []), totalStreams: 0,
    sweepInterval: 60_000_000_000, meter: { nil })
  let clock = ManualClock()

  func tap() -> RelayTap {
    let sent = SendTap(
      recorder: recorder, state: RunStateBox(RunState(totalStreams: 0)), clock: clock, stampsSends: false)
    return RelayTap(
      sent: sent, workers: ["consumer", "producer"], faults: nil, tags: RelayNetwork.TagTable())
  }

  func frame(from: String, to: String, id: String = "m-1") -> ByteBuffer {
    ByteBuffer(
      string: #"{"messageId":"\#(id)","sourceWorker":"\#(from)","targetWorker":"\#(to)","type":"stream_request","#
        + #""payload":{"method":"m","args":null},"streamId":"s-1","timestamp":1}"#)
  }

  func history() -> History { recorder.finish(stats: [:], capabilities: [], endedAt: 0, complete: true, digests: [:]) }

  @Test("a worker's frame is a message it sent, delivered at the connection of the worker it is addressed to only")
  func sentAndDelivered() {
    let t = tap()
    let bytes = frame(from: "consumer", to: "producer")
    t.received(from: "consumer", text: true, bytes: bytes)
    #expect(t.route(from: "consumer", to: "producer", text: true, bytes: bytes, frame: 1) == .deliver)
    #expect(t.route(from: "consumer", to: "#7", text: true, bytes: bytes, frame: 1) == .deliver)
    t.outcome(frame: 1, to: "producer", written: true)
    t.outcome(frame: 1, to: "#7", written: true)
    let h = history()
    #expect(h.wire.count == 1 && h.wire[0].type == .streamRequest)
    #expect(h.undecodable.isEmpty)
    let deliveries = h.events.filter { if case .delivered = $0.event { true } else { false } }
    #expect(deliveries.count == 1, "to producer only, not to an unnamed connection")
  }

  @Test("KSP-11.6 through the relay: a message the relay drops for a receiver that does not read is no delivery")
  func droppedAtTheRelayIsNoDelivery() {
    let t = tap()
    let bytes = frame(from: "consumer", to: "producer")
    t.received(from: "consumer", text: true, bytes: bytes)
    #expect(t.route(from: "consumer", to: "producer", text: true, bytes: bytes, frame: 1) == .deliver)
    // Routed but not yet written: nothing is known to have arrived.
    #expect(!history().events.contains { if case .delivered = $0.event { true } else { false } })
    t.outcome(frame: 1, to: "producer", written: false)
    let h = history()
    #expect(!h.events.contains { if case .delivered = $0.event { true } else { false } })
    #expect(h.events.contains { $0.event == .fault(0, .dropped) }, "the drop is a fault on the message")
    // A later outcome for the same frame is not counted twice.
    t.outcome(frame: 1, to: "producer", written: true)
    #expect(!history().events.contains { if case .delivered = $0.event { true } else { false } })
  }

  @Test("KSP-1.1 through the relay: binary frames, garbage and a sourceWorker not the connection's are problems")
  func liesAreProblems() {
    let t = tap()
    t.received(from: "consumer", text: false, bytes: ByteBuffer(bytes: [1, 2, 3]))
    t.received(from: "consumer", text: true, bytes: ByteBuffer(string: "not json"))
    t.received(from: "consumer", text: true, bytes: frame(from: "producer", to: "consumer", id: "m-2"))
    t.received(from: "consumer", text: true, bytes: ByteBuffer(string: "ping"))
    // The harness's own probe connections are not the implementation's.
    t.received(from: "#3", text: true, bytes: ByteBuffer(string: "not json either"))
    let h = history()
    #expect(h.undecodable.count == 3, "\(h.undecodable.map(\.problem))")
    #expect(h.undecodable.last?.problem.contains("sourceWorker \"producer\" on the connection of consumer") == true)
    #expect(h.wire.count == 1, "the impersonating message is still what went on the wire")
  }
}
