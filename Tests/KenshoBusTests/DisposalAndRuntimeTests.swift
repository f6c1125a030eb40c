import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-10 Disposal")
struct DisposalRuleTests {
  @Test("KSP-10.1: dispose terminates each open stream once with BUS_DISPOSED, stops the sweep, releases the transport")
  func ksp10_1_disposeConsumer() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try f.open("hold")
    #expect(f.consumer.isSweepScheduled)
    f.consumer.dispose()
    f.consumer.dispose()  // twice is harmless
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.busDisposed, ErrorCode.busDisposed])
    #expect(!f.consumer.isSweepScheduled)
    #expect(f.clock.pendingTimers == 0, "no sweep timer is left")
    #expect(!f.network.workers.contains("consumer"), "the transport is released")
    #expect(emitters.all.allSatisfy { $0.isCancelled }, "the producers were told")
    #expect(throws: BusError.disposed) { try f.open("hold") }
    f.advance(.seconds(600))
    #expect(f.recorder.events.count == 2)
  }

  @Test("KSP-10.1: disposing a producer fails the streams it produces with BUS_DISPOSED")
  func ksp10_1_disposeProducer() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    f.producer.dispose()
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.busDisposed])
    #expect(throws: EmitterError.cancelled) { try emitters.first?.chunk(1) }
    #expect(f.consumer.stats.activeStreams == 0)
  }
}

@Suite("Developer API")
struct RuntimeAPITests {
  struct Token: Codable, Equatable, Sendable {
    var text: String
    var index: Int
  }
  struct Summary: Codable, Equatable, Sendable { var count: Int }

  @Test("typed callAgentStream decodes chunks and the summary")
  func typedCallbacks() throws {
    let f = try Fixture()
    let consumer = AgentRuntime(bus: f.consumer)
    let producer = AgentRuntime(bus: f.producer)
    producer.registerStreamMethod("tokens") { args, stream in
      let words = try args.decode([String].self)
      for (i, w) in words.enumerated() { try stream.chunk(JSONValue(encoding: Token(text: w, index: i))) }
      try stream.end(JSONValue(encoding: Summary(count: words.count)))
    }
    let tokens = Mutex<[Token]>([])
    let summary = Mutex<Summary?>(nil)
    try consumer.callAgentStream(
      "producer", "tokens", ["a", "b"], chunk: Token.self, summary: Summary.self,
      onChunk: { t in tokens.withLock { $0.append(t) } }, onEnd: { s in summary.withLock { $0 = s } })
    #expect(tokens.withLock { $0 } == [Token(text: "a", index: 0), Token(text: "b", index: 1)])
    #expect(summary.withLock { $0 } == Summary(count: 2))
  }

  @Test("a chunk that does not decode cancels the stream")
  func typedCallbacksDecodingFailure() throws {
    let f = try Fixture()
    let consumer = AgentRuntime(bus: f.consumer)
    let emitters = f.registerHolding()
    let errors = Mutex<[SerializedError]>([])
    try consumer.callAgentStream(
      "producer", "hold", JSONValue.null, chunk: Token.self, summary: Summary.self, onChunk: { _ in },
      onEnd: { _ in }, onError: { e in errors.withLock { $0.append(e) } })
    try emitters.first?.chunk("not a token")
    #expect(errors.withLock { $0.map(\.code) } == [ErrorCode.streamCancelled])
    #expect(emitters.first?.isCancelled == true)
  }

  @Test("for try await over runtime.stream yields the chunks then finishes")
  func asyncSequence() async throws {
    let network = LocalNetwork()
    let consumer = try AgentRuntime(name: "consumer", transport: network.endpoint("consumer"))
    let producer = try AgentRuntime(name: "producer", transport: network.endpoint("producer"))
    producer.registerAsyncStreamMethod("count") { args, stream in
      for i in 0..<(args.intValue ?? 0) { try stream.chunk(.int(i)) }
      try stream.end()
    }
    var seen: [JSONValue] = []
    for try await chunk in consumer.stream("producer", "count", 5) { seen.append(chunk) }
    #expect(seen == [0, 1, 2, 3, 4])
    #expect(consumer.bus.stats.activeStreams == 0)
  }

  @Test("breaking out of the loop cancels the stream at the producer")
  func asyncSequenceCancellation() async throws {
    let network = LocalNetwork()
    let consumer = try AgentRuntime(name: "consumer", transport: network.endpoint("consumer"))
    let producer = try AgentRuntime(name: "producer", transport: network.endpoint("producer"))
    let cancelled = Counter()
    producer.registerAsyncStreamMethod("forever") { _, stream in
      var i: Int64 = 0
      while !Task.isCancelled {
        try stream.chunk(.int(i))
        i += 1
        try await Task.sleep(for: .milliseconds(1))
      }
      cancelled.increment()
    }
    var taken = 0
    for try await _ in consumer.stream("producer", "forever") {
      taken += 1
      if taken == 3 { break }
    }
    for _ in 0..<500 where producer.bus.stats.emitters > 0 { try await Task.sleep(for: .milliseconds(2)) }
    #expect(producer.bus.stats.emitters == 0)
    #expect(consumer.bus.stats.activeStreams == 0)
  }

  @Test("callAgent returns the handler's result, or its error")
  func requestResponse() async throws {
    let network = LocalNetwork()
    let a = try AgentRuntime(name: "a", transport: network.endpoint("a"))
    let b = try AgentRuntime(name: "b", transport: network.endpoint("b"))
    b.registerMethod("double") { args in .int((args.intValue ?? 0) * 2) }
    b.registerMethod("fail") { _ in throw SerializedError(name: "Nope", message: "no", code: "NO") }
    #expect(try await a.callAgent("b", "double", 21) == 42)
    await #expect(throws: SerializedError(name: "Nope", message: "no", code: "NO")) {
      try await a.callAgent("b", "fail")
    }
    do {
      _ = try await a.callAgent("b", "missing")
      Issue.record("expected METHOD_NOT_FOUND")
    } catch let error as SerializedError {
      #expect(error.code == ErrorCode.methodNotFound)
    }
  }

  @Test("the bus rejects invalid worker names")
  func invalidNames() throws {
    let network = LocalNetwork()
    #expect(throws: BusError.invalidWorkerName("1abc")) {
      try MessageBus(name: "1abc", transport: network.endpoint("1abc"))
    }
    let bus = try MessageBus(name: "ok", transport: network.endpoint("ok"))
    #expect(throws: BusError.invalidWorkerName("*")) {
      try bus.callStream("*", method: "m", args: .null, callbacks: StreamCallbacks(onChunk: { _ in }))
    }
  }
}
