import KenshoBus
import KenshoProtocol
import Testing

@Suite("KSP-5 Errors")
struct ErrorRuleTests {
  @Test("KSP-5.1: stream.error sends one stream_error with name, message and STREAM_ERROR by default")
  func ksp5_1_errorOnTheWire() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try #require(emitters.first).error(SerializedError(name: "ParseError", message: "bad token"))
    let errors = f.wire.of(.streamError)
    #expect(errors.count == 1)
    #expect(errors.first?.error == SerializedError(name: "ParseError", message: "bad token", code: "STREAM_ERROR"))
    #expect(errors.first?.targetWorker == "consumer")
  }

  @Test("KSP-5.2: onError receives the producer's name, message and code exactly once")
  func ksp5_2_errorPreserved() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    let sent = SerializedError(name: "RateLimit", message: "slow down", code: "RATE_LIMITED", stack: "at x")
    try #require(emitters.first).error(sent)
    f.advance(.seconds(600))
    #expect(f.recorder.events == [.error(sent)])
  }

  @Test("KSP-5.3: a stream_error without error terminates with STREAM_ERROR 'Unknown stream error'")
  func ksp5_3_errorWithoutErrorField() throws {
    let f = try Fixture()
    _ = f.registerHolding()
    let id = try f.open("hold")
    f.consumer.receive(
      KenshoMessage(
        messageId: "e1", sourceWorker: "producer", targetWorker: "consumer", type: .streamError, payload: .null,
        streamId: id))
    let errors = f.recorder.errors.filter { $0.message == "Unknown stream error" }
    #expect(errors.map(\.code) == [ErrorCode.streamError])
    #expect(f.consumer.stats.activeStreams == 0)
  }

  @Test("KSP-5.4: a callback that throws does not break the bus, other streams or later deliveries")
  func ksp5_4_throwingCallbackContained() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let thrower = Recorder(clock: f.clock)
    let bystander = Recorder(clock: f.clock)
    try f.open("hold", callbacks: thrower.callbacks(throwOnChunk: true))
    try f.open("hold", callbacks: bystander.callbacks())
    for i in 0..<3 {
      for e in emitters.all { try e.chunk(.int(Int64(i))) }
    }
    for e in emitters.all { try e.end() }
    #expect(thrower.events == [.chunk(0), .chunk(1), .chunk(2), .end(.null)])
    #expect(bystander.events == thrower.events)
    #expect(f.consumer.stats.callbackFailures == 3)
    #expect(f.consumer.stats.activeStreams == 0)
  }
}
