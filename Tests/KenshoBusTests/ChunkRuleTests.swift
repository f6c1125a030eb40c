import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-3 Chunks")
struct ChunkRuleTests {
  static let payloads: [JSONValue] = [
    0, -7, 1.5, "text", "", true, false, .null, [1, [2, [3]]], ["nested": ["a": [1, 2], "b": .null]],
    .string(String(repeating: "é", count: 1000)), .int(.max), .int(.min),
  ]

  @Test("KSP-3.1: a chunk is one stream_chunk to the consumer with the streamId and the data as payload")
  func ksp3_1_chunkAddressedToConsumer() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    try #require(emitters.first).chunk(["k": 1])
    let chunks = f.wire.of(.streamChunk)
    #expect(chunks.count == 1)
    #expect(chunks.first?.targetWorker == "consumer")
    #expect(chunks.first?.sourceWorker == "producer")
    #expect(chunks.first?.streamId == id)
    #expect(chunks.first?.payload == ["k": 1])
  }

  @Test("KSP-3.2: onChunk sees every chunk once, in order, unchanged")
  func ksp3_2_orderedExactlyOnceUnchanged() throws {
    let f = try Fixture()
    f.registerEmitting(chunks: Self.payloads)
    try f.open("numbers")
    f.advance(.seconds(1))
    #expect(f.recorder.chunks == Self.payloads)
    #expect(f.recorder.terminals == [.end("done")])
  }

  @Test("KSP-3.2: interleaved streams each keep their own order")
  func ksp3_2_interleavedStreams() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let recorders = (0..<3).map { _ in Recorder(clock: f.clock) }
    for r in recorders { try f.open("hold", callbacks: r.callbacks()) }
    for i in 0..<50 {
      for e in emitters.all { try e.chunk(.int(Int64(i))) }
    }
    for r in recorders { #expect(r.chunks == (0..<50).map { .int(Int64($0)) }) }
  }

  @Test("KSP-3.3: each chunk refreshes the stream's last activity")
  func ksp3_3_chunkRefreshesActivity() throws {
    var config = BusConfiguration()
    config.streamTimeout = .seconds(10)
    config.sweepInterval = .seconds(1)
    let f = try Fixture(configuration: config)
    let emitters = f.registerHolding()
    try f.open("hold")
    for _ in 0..<5 {
      f.advance(.seconds(8))
      try #require(emitters.first).chunk(1)
    }
    #expect(f.recorder.errors.isEmpty, "40 s of a chunk every 8 s never idles 10 s")
    f.advance(.seconds(12))
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout])
  }

  @Test("KSP-3.4: with seq, chunks are delivered in seq order and duplicates dropped despite reordering")
  func ksp3_4_reorderAndDuplicates() throws {
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
    for i in 0..<6 { try e.chunk(.int(Int64(i))) }
    let messages = held.withLock { $0 }
    #expect(messages.map(\.seq) == [0, 1, 2, 3, 4, 5], "the producer numbers chunks from 0")
    // Deliver out of order, with repeats.
    for i in [3, 1, 1, 0, 5, 2, 3, 4, 0] { f.network.route(messages[i], bypassingTap: true) }
    #expect(f.recorder.chunks == [0, 1, 2, 3, 4, 5])
    #expect(f.consumer.stats.dropped[.duplicate] == 3)
  }

  @Test("KSP-3.3: a stream_end held back while earlier chunks are missing refreshes the stream")
  func ksp3_3_heldBackEndRefreshes() throws {
    var config = BusConfiguration()
    config.streamTimeout = .seconds(10)
    config.sweepInterval = .seconds(1)
    let f = try Fixture(configuration: config)
    let emitters = f.registerHolding()
    try f.open("hold")
    let e = try #require(emitters.first)
    try e.chunk(0)
    let late = Mutex<KenshoMessage?>(nil)
    f.wire.intercept { m in
      guard m.type == .streamChunk else { return .deliver }
      late.withLock { $0 = m }
      return .drop
    }
    try e.chunk(1)  // held in the network
    f.advance(.seconds(8))
    try e.end("done")  // arrives at 8 s, held back: chunk 1 is missing
    f.advance(.seconds(8))
    #expect(f.recorder.errors.isEmpty, "16 s after the last chunk, but only 8 s after the held end")
    f.network.route(try #require(late.withLock { $0 }), bypassingTap: true)
    #expect(f.recorder.events == [.chunk(0), .chunk(1), .end("done")])
  }

  @Test(
    "KSP-3.3: a dropped message (KSP-1.2, 1.3, 3.5) or one from another worker than the producer never refreshes the stream"
  )
  func ksp3_3_droppedAndForeignDoNotRefresh() throws {
    var config = BusConfiguration()
    config.streamTimeout = .seconds(10)
    config.sweepInterval = .seconds(1)
    let f = try Fixture(configuration: config)
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    try #require(emitters.first).chunk(0)
    func chunk(_ messageId: String, from source: String = "producer", to target: String = "consumer", seq: Int = 1)
      -> KenshoMessage
    {
      var m = KenshoMessage(
        messageId: messageId, sourceWorker: source, targetWorker: target, type: .streamChunk, payload: "x",
        streamId: id)
      m.seq = seq
      return m
    }
    let forged: [(KenshoMessage, String)] = [
      (chunk("from-intruder", from: "intruder"), "consumer"),  // not the stream's producer
      (chunk(String(repeating: "x", count: 300)), "consumer"),  // KSP-1.2: oversized messageId
      (chunk("misaddressed", to: "someoneElse"), "consumer"),  // KSP-1.3
      (
        KenshoMessage(
          messageId: "end-from-intruder", sourceWorker: "intruder", targetWorker: "consumer", type: .streamEnd,
          payload: .null, streamId: id, metadata: MessageMetadata(seq: 5)), "consumer"
      ),
      (
        KenshoMessage(
          messageId: "error-from-intruder", sourceWorker: "intruder", targetWorker: "consumer", type: .streamError,
          payload: .null, streamId: id, error: SerializedError(name: "E", message: "forged")), "consumer"
      ),
    ]
    for step in 0..<5 {
      f.advance(.seconds(2))
      for (m, worker) in forged { f.network.route(m, to: worker) }
      #expect(f.recorder.chunks == [0], "step \(step): nothing forged is delivered")
    }
    f.advance(.seconds(2))
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout], "idle since the chunk at 0 s")
    let at = try #require(f.recorder.times.last)
    #expect(at > 10_000_000_000 && at <= 11_000_000_000)
    #expect(f.consumer.stats.dropped[.wrongSource, default: 0] >= 5)
  }

  @Test("KSP-3.4: a consumer holds back at least 1024 out-of-order chunks per stream, however it is configured")
  func ksp3_4_reorderBoundAtLeast1024() throws {
    for configured in [16, 1024] {
      var config = BusConfiguration()
      config.reorderWindow = configured
      let f = try Fixture(configuration: config)
      let emitters = f.registerHolding()
      try f.open("hold")
      let held = Mutex<[KenshoMessage]>([])
      f.wire.intercept { m in
        guard m.type == .streamChunk else { return .deliver }
        held.withLock { $0.append(m) }
        return .drop
      }
      let e = try #require(emitters.first)
      for i in 0...1025 { try e.chunk(.int(Int64(i))) }
      let messages = held.withLock { $0 }
      // Chunks 1...1024 arrive before chunk 0: 1024 held back, all kept.
      for m in messages[1...1024] { f.network.route(m, bypassingTap: true) }
      #expect(f.consumer.stats.dropped[.reorderOverflow] == nil, "reorderWindow \(configured): 1024 are held")
      // One more out of order is beyond the bound: dropped and counted.
      f.network.route(messages[1025], bypassingTap: true)
      #expect(f.consumer.stats.dropped[.reorderOverflow] == 1)
      f.network.route(messages[0], bypassingTap: true)
      #expect(f.recorder.chunks == (0...1024).map { .int(Int64($0)) })
    }
  }

  @Test("KSP-3.5: a chunk for a stream that is not active is dropped and counted")
  func ksp3_5_unknownStreamChunkDropped() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    let id = try f.open("hold")
    let e = try #require(emitters.first)
    try e.chunk(1)
    let chunk = try #require(f.wire.of(.streamChunk).first)
    try e.end()
    var unknown = chunk
    unknown.streamId = "never-opened"
    f.network.route(unknown)
    f.network.route(chunk)  // after the end
    #expect(f.recorder.events == [.chunk(1), .end(.null)])
    #expect(f.consumer.stats.dropped[.unknownStream] == 2)
    _ = id
  }
}
