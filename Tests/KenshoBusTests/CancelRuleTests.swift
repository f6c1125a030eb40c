import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-7 Cancellation")
struct CancelRuleTests {
  @Test("KSP-7.1: cancelStream removes the entry, calls onError STREAM_CANCELLED once, sends one stream_cancel")
  func ksp7_1_cancel() throws {
    let f = try Fixture()
    _ = f.registerHolding()
    let id = try f.open("hold")
    #expect(f.consumer.cancelStream(id, reason: "user pressed stop"))
    #expect(!f.consumer.cancelStream(id), "a second cancel finds nothing")
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamCancelled])
    #expect(f.consumer.stats.activeStreams == 0)
    let cancels = f.wire.of(.streamCancel)
    #expect(cancels.count == 1)
    #expect(cancels.first?.payload == "user pressed stop")
    #expect(cancels.first?.targetWorker == "producer")
    #expect(cancels.first?.streamId == id)
  }

  @Test("KSP-7.2: on stream_cancel the emitter goes inactive and the handler observes it")
  func ksp7_2_emitterInactiveAfterCancel() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let reasons = Mutex<[JSONValue]>([])
    let id = try f.open("hold")
    let e = try #require(emitters.first)
    e.onCancel { reason in reasons.withLock { $0.append(reason) } }
    try e.chunk(1)
    f.consumer.cancelStream(id, reason: "stop")
    #expect(e.isCancelled)
    #expect(reasons.withLock { $0 } == ["stop"])
    let before = f.wire.messages.count
    #expect(throws: EmitterError.cancelled) { try e.chunk(2) }
    #expect(throws: EmitterError.cancelled) { try e.end() }
    #expect(f.wire.messages.count == before, "nothing is sent after the cancel")
    #expect(f.producer.stats.emitters == 0)
  }

  @Test("KSP-7.3: a stream_cancel from a worker that is not the consumer is ignored")
  func ksp7_3_foreignCancelIgnored() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    f.producer.receive(
      KenshoMessage(
        messageId: "c1", sourceWorker: "intruder", targetWorker: "producer", type: .streamCancel, payload: .null,
        streamId: id))
    let e = try #require(emitters.first)
    #expect(e.isActive)
    #expect(f.producer.stats.dropped[.foreignCancel] == 1)
    try e.chunk("still here")
    #expect(f.recorder.chunks == ["still here"])
  }
}
