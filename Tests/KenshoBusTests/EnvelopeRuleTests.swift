import KenshoBus
import KenshoProtocol
import Testing

@Suite("KSP-1 Envelope")
struct EnvelopeRuleTests {
  @Test("KSP-1.1: every message the reference bus sends is a well-formed envelope")
  func ksp1_1_sentMessagesAreWellFormed() async throws {
    let f = try Fixture()
    f.registerEmitting(chunks: [1, "two", ["three": 3]])
    f.producer.registerStreamMethod("fail") { _, s in try s.error(SerializedError(name: "E", message: "m")) }
    let emitters = f.registerHolding()
    try f.open("numbers", traceId: "trace-1")
    try f.open("fail")
    try f.open("missing")
    let held = try f.open("hold")
    f.advance(.seconds(1))
    f.consumer.cancelStream(held, reason: "enough")
    _ = emitters
    f.consumer.broadcast(["hello": true])
    let types = Set(f.wire.messages.map(\.type))
    #expect(types.isSuperset(of: [.streamRequest, .streamChunk, .streamEnd, .streamError, .streamCancel, .broadcast]))
    for m in f.wire.messages {
      #expect(m.validate(.sent) == nil, "\(m) breaks KSP-1.1")
      if m.type.isStream { #expect(m.streamId != nil) }
    }
    #expect(Set(f.wire.messages.map(\.messageId)).count == f.wire.messages.count, "messageIds are unique")
  }

  @Test("KSP-1.2: malformed messages are dropped and counted, never reach a callback, never disturb other streams")
  func ksp1_2_malformedMessagesAreDropped() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    f.advance(.milliseconds(1))
    let good = KenshoMessage(
      messageId: "m1", sourceWorker: "producer", targetWorker: "consumer", type: .streamChunk, payload: 1,
      streamId: id)
    var noStream = good
    noStream.streamId = nil
    var badSource = good
    badSource.sourceWorker = "9bad name"
    var longId = good
    longId.messageId = String(repeating: "x", count: 257)
    var emptyStream = good
    emptyStream.streamId = ""
    var negativeSeq = good
    negativeSeq.metadata = MessageMetadata(seq: -1)
    for bad in [noStream, badSource, longId, emptyStream, negativeSeq] {
      #expect(bad.validate() != nil)
      f.consumer.receive(bad)
    }
    #expect(f.recorder.events.isEmpty)
    #expect(f.consumer.stats.dropped[.invalid] == 5)
    // The stream is undisturbed: a chunk and the end still arrive.
    try emitters.first?.chunk("after")
    try emitters.first?.end("fin")
    #expect(f.recorder.events == [.chunk("after"), .end("fin")])
  }

  @Test("KSP-1.3: a message addressed to another worker is ignored")
  func ksp1_3_foreignTargetIsIgnored() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    f.consumer.receive(
      KenshoMessage(
        messageId: "x1", sourceWorker: "producer", targetWorker: "someoneElse", type: .streamEnd, payload: "stolen",
        streamId: id))
    #expect(f.recorder.events.isEmpty)
    #expect(f.consumer.stats.dropped[.notAddressed] == 1)
    #expect(f.consumer.stats.activeStreams == 1)
    try emitters.first?.end("mine")
    #expect(f.recorder.events == [.end("mine")])
  }

  @Test("KSP-1.4: every message of a stream carries the traceId of its stream_request")
  func ksp1_4_traceIdPropagates() throws {
    let f = try Fixture()
    f.registerEmitting(chunks: [1, 2])
    let emitters = f.registerHolding()
    try f.open("numbers", traceId: "t-42")
    let cancelled = try f.open("hold", traceId: "t-43")
    f.advance(.seconds(1))
    f.consumer.cancelStream(cancelled)
    _ = emitters
    for m in f.wire.messages where m.type.isStream {
      #expect(m.traceId == (m.streamId == cancelled ? "t-43" : "t-42"), "\(m.type) lost its traceId")
    }
    #expect(f.wire.of(.streamChunk).count == 2)
  }
}
