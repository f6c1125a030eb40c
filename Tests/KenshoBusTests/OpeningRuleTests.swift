import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-2 Opening a stream")
struct OpeningRuleTests {
  @Test("KSP-2.1: callAgentStream records the stream before sending one stream_request {method, args}")
  func ksp2_1_recordsBeforeSending() throws {
    let clock = ManualClock()
    let seenActive = Mutex<[Int]>([])
    let consumerBox = Mutex<MessageBus?>(nil)
    let network = LocalNetwork(tap: { m in
      if m.type == .streamRequest, let c = consumerBox.withLock({ $0 }) {
        seenActive.withLock { $0.append(c.stats.activeStreams) }
      }
      return .deliver
    })
    let consumer = try MessageBus(name: "consumer", transport: network.endpoint("consumer"), clock: clock)
    consumerBox.withLock { $0 = consumer }
    let producer = try MessageBus(name: "producer", transport: network.endpoint("producer"), clock: clock)
    producer.registerStreamMethod("m") { _, _ in }
    var ids: Set<String> = []
    for i in 0..<100 {
      ids.insert(
        try consumer.callStream(
          "producer", method: "m", args: ["i": .int(Int64(i))], callbacks: StreamCallbacks(onChunk: { _ in })))
    }
    #expect(ids.count == 100, "streamIds are unique")
    #expect(seenActive.withLock { $0 } == Array(1...100), "the entry exists when the request is on the wire")
    #expect(producer.stats.emitters == 100)
  }

  @Test("KSP-2.1: the stream_request payload is { method, args }")
  func ksp2_1_requestPayloadShape() throws {
    let f = try Fixture()
    _ = f.registerHolding("m")
    let id = try f.open("m", args: ["q": "x"])
    let requests = f.wire.of(.streamRequest)
    #expect(requests.count == 1)
    #expect(requests.first?.payload == ["method": "m", "args": ["q": "x"]])
    #expect(requests.first?.streamId == id)
    #expect(requests.first?.targetWorker == "producer")
  }

  @Test("KSP-2.2: the handler runs exactly once with args and an emitter bound to the stream and its consumer")
  func ksp2_2_handlerCalledOnceWithArgs() throws {
    let f = try Fixture()
    let calls = Mutex<[(JSONValue, String, String)]>([])
    f.producer.registerStreamMethod("m") { args, stream in
      calls.withLock { $0.append((args, stream.streamId, stream.consumer)) }
    }
    let id = try f.open("m", args: [1, 2, 3])
    let seen = calls.withLock { $0 }
    #expect(seen.count == 1)
    #expect(seen.first?.0 == [1, 2, 3])
    #expect(seen.first?.1 == id)
    #expect(seen.first?.2 == "consumer")
  }

  @Test("KSP-2.3: an unknown method is answered with one stream_error METHOD_NOT_FOUND, not a response")
  func ksp2_3_unknownMethod() throws {
    let f = try Fixture()
    try f.open("nope")
    #expect(f.wire.of(.response).isEmpty)
    let errors = f.wire.of(.streamError)
    #expect(errors.count == 1)
    #expect(errors.first?.error?.code == ErrorCode.methodNotFound)
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.methodNotFound])
    #expect(f.consumer.stats.activeStreams == 0)
  }

  @Test("KSP-2.4: a duplicated stream_request does not run the handler again")
  func ksp2_4_duplicateRequestRunsOnce() throws {
    let f = try Fixture()
    let runs = Counter()
    f.producer.registerStreamMethod("m") { _, s in
      runs.increment()
      try s.end()
    }
    try f.open("m")
    let request = try #require(f.wire.of(.streamRequest).first)
    f.network.route(request, bypassingTap: true)  // the transport repeats it
    f.network.route(request, bypassingTap: true)
    #expect(runs.count == 1)
    #expect(f.producer.stats.dropped[.duplicate] == 2)
    #expect(f.recorder.terminals == [.end(.null)])
  }

  @Test("KSP-2.5: a handler that throws synchronously fails its stream with name, message and STREAM_ERROR")
  func ksp2_5_synchronousThrow() throws {
    let f = try Fixture()
    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
    f.producer.registerStreamMethod("m") { _, _ in throw Boom() }
    f.producer.registerStreamMethod("coded") { _, _ in
      throw SerializedError(name: "QuotaError", message: "over quota", code: "QUOTA")
    }
    try f.open("m")
    try f.open("coded")
    #expect(f.wire.of(.streamError).count == 2)
    #expect(
      f.recorder.errors == [
        SerializedError(name: "Boom", message: "boom", code: ErrorCode.streamError),
        SerializedError(name: "QuotaError", message: "over quota", code: "QUOTA"),
      ])
  }

  @Test("KSP-2.5: a handler that throws asynchronously fails its stream")
  func ksp2_5_asynchronousThrow() async throws {
    let f = try Fixture()
    let runtime = AgentRuntime(bus: f.producer)
    runtime.registerAsyncStreamMethod("m") { _, stream in
      try stream.chunk(1)
      await Task.yield()
      throw SerializedError(name: "LateError", message: "late", code: "LATE")
    }
    let consumer = AgentRuntime(bus: f.consumer)
    var received: [JSONValue] = []
    do {
      for try await chunk in consumer.stream("producer", "m") { received.append(chunk) }
      Issue.record("the stream should have failed")
    } catch let error as SerializedError {
      #expect(error == SerializedError(name: "LateError", message: "late", code: "LATE"))
    }
    #expect(received == [1])
    #expect(f.wire.of(.streamError).count == 1)
  }
}
