import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-4 Ending a stream")
struct EndingRuleTests {
  @Test("KSP-4.1: end sends one stream_end and onEnd runs exactly once with the summary")
  func ksp4_1_endOnce() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try #require(emitters.first).end(["total": 3])
    #expect(f.wire.of(.streamEnd).count == 1)
    #expect(f.recorder.events == [.end(["total": 3])])
    #expect(f.consumer.stats.activeStreams == 0)
  }

  @Test("KSP-4.2: after onEnd, onError or a timeout no callback runs again, even when the callback throws")
  func ksp4_2_noCallbackAfterTerminal() throws {
    var config = BusConfiguration()
    config.streamTimeout = .seconds(5)
    config.sweepInterval = .seconds(1)
    let f = try Fixture(configuration: config)
    let emitters = f.registerHolding()
    let endThrows = Recorder(clock: f.clock)
    let errorThrows = Recorder(clock: f.clock)
    let timeoutThrows = Recorder(clock: f.clock)
    try f.open("hold", callbacks: endThrows.callbacks(throwOnEnd: true))
    try f.open("hold", callbacks: errorThrows.callbacks(throwOnError: true))
    try f.open("hold", callbacks: timeoutThrows.callbacks(throwOnError: true))
    let (a, b, _) = (emitters.all[0], emitters.all[1], emitters.all[2])
    try a.end("a")
    try b.error(SerializedError(message: "b"))
    #expect(f.consumer.stats.activeStreams == 1)
    f.advance(.seconds(30))
    // Replays of the terminal messages and late chunks find no entry.
    for m in f.wire.messages where m.type == .streamEnd || m.type == .streamError { f.network.route(m) }
    #expect(endThrows.events == [.end("a")])
    #expect(errorThrows.events.count == 1)
    #expect(timeoutThrows.errors.map(\.code) == [ErrorCode.streamTimeout])
    #expect(f.consumer.stats.activeStreams == 0)
    #expect(f.consumer.stats.callbackFailures == 3)
  }

  @Test("KSP-4.3: after end or error the emitter sends nothing more and rejects calls locally")
  func ksp4_3_emitterClosedAfterTerminal() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try f.open("hold")
    let (ended, failed) = (emitters.all[0], emitters.all[1])
    try ended.end()
    try failed.error(SerializedError(message: "x"))
    let before = f.wire.messages.count
    for e in [ended, failed] {
      #expect(throws: EmitterError.closed) { try e.chunk(1) }
      #expect(throws: EmitterError.closed) { try e.end() }
      #expect(throws: EmitterError.closed) { try e.error(SerializedError(message: "again")) }
      #expect(!e.isActive)
    }
    #expect(f.wire.messages.count == before)
    #expect(f.producer.stats.emitters == 0)
  }

  @Test("KSP-4.4: stream_end carries the chunk count and onEnd waits for every earlier chunk")
  func ksp4_4_endWaitsForChunks() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    let held = Mutex<[KenshoMessage]>([])
    f.wire.intercept { m in
      guard m.type == .streamChunk else { return .deliver }
      held.withLock { $0.append(m) }
      return .drop
    }
    let e = try #require(emitters.first)
    for i in 0..<3 { try e.chunk(.int(Int64(i))) }
    try e.end("sum")  // overtakes the held chunks
    #expect(f.wire.of(.streamEnd).first?.seq == 3)
    #expect(f.recorder.events.isEmpty, "the end waits")
    for m in held.withLock({ $0 }).reversed() { f.network.route(m, bypassingTap: true) }
    #expect(f.recorder.events == [.chunk(0), .chunk(1), .chunk(2), .end("sum")])
    #expect(f.consumer.stats.activeStreams == 0)
  }
}
