import Foundation
import KenshoBus
import KenshoProtocol
import NIOCore
import Synchronization
import Testing

@testable import KenshoRelay

/// Collects what one raw client receives.
final class Inbox: Sendable {
  private let state = Mutex<(frames: [(text: Bool, body: String)], closed: Int?, infos: Int)>(([], nil, 0))

  func handle(_ event: RelayEvent) {
    state.withLock { s in
      switch event {
      case .frame(let text, let bytes):
        let body = String(buffer: bytes)
        if body.contains(#""server_info""#) { s.infos += 1 }
        s.frames.append((text, body))
      case .closed(let code): s.closed = code ?? -1
      }
    }
  }

  /// How many frames other than `server_info` arrived.
  var messageCount: Int { state.withLock { $0.frames.count - $0.infos } }

  var frames: [(text: Bool, body: String)] { state.withLock { $0.frames } }
  /// Frames other than the relay's `server_info`.
  var messages: [(text: Bool, body: String)] { frames.filter { !$0.body.contains(#""server_info""#) } }
  var closedCode: Int? { state.withLock { $0.closed } }

  /// Waits (up to 30 s) until `condition` holds.
  func wait(_ what: String, _ condition: @escaping @Sendable (Inbox) -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while !condition(self) {
      guard ContinuousClock.now < deadline else {
        Issue.record(
          "timed out waiting for \(what); got \(frames.count) frames, closed \(String(describing: closedCode))")
        return
      }
      try await Task.sleep(for: .milliseconds(20))
    }
  }
}

func connect(_ relay: RelayServer, token: String? = nil, label: String? = nil) async throws -> (RelayClient, Inbox) {
  let inbox = Inbox()
  let client = try await RelayClient.connect(
    to: try RelayURL(relay.url), token: token, label: label, handler: inbox.handle)
  try await inbox.wait("server_info") { !$0.frames.isEmpty }
  return (client, inbox)
}

@Suite("The Swift relay (PROTOCOL.md §11)")
struct RelayServerTests {
  @Test("KSP-11.1: a frame reaches every other connection unchanged, of the same kind, never its sender")
  func fanOutNoEcho() async throws {
    let relay = try await RelayServer.start()
    let (a, inboxA) = try await connect(relay)
    let (_, inboxB) = try await connect(relay)
    let (_, inboxC) = try await connect(relay)
    a.send(text: #"{"hello":"world"}"#)
    a.send(ByteBuffer(bytes: [0, 1, 2, 255]), text: false)
    for inbox in [inboxB, inboxC] {
      try await inbox.wait("two frames") { $0.messageCount == 2 }
      #expect(inbox.messages.map(\.text) == [true, false])
      #expect(inbox.messages.first?.body == #"{"hello":"world"}"#)
    }
    try await Task.sleep(for: .milliseconds(50))
    #expect(inboxA.messages.isEmpty, "the sender got its own frame back")
    await relay.close()
  }

  @Test("KSP-11.2: frames from one sender arrive in the order sent (2 senders, 3 000 frames each)")
  func perSenderOrder() async throws {
    let relay = try await RelayServer.start()
    let (a, _) = try await connect(relay)
    let (b, _) = try await connect(relay)
    let (_, inbox) = try await connect(relay)
    for i in 0..<3_000 {
      a.send(text: "a\(i)")
      b.send(text: "b\(i)")
    }
    try await inbox.wait("6 000 frames") { $0.messageCount == 6_000 }
    let bodies = inbox.messages.map(\.body)
    let stats = await relay.stats()
    for sender in ["a", "b"] {
      let got = bodies.filter { $0.hasPrefix(sender) }
      let firstWrong = got.indices.first { got[$0] != "\(sender)\($0)" }
      #expect(
        got.count == 3_000 && firstWrong == nil,
        "from \(sender): \(got.count) frames, first out of order at \(String(describing: firstWrong)); \(stats)")
    }
    await relay.close()
  }

  @Test("KSP-11.3: `ping` is answered `pong` to its sender only and not forwarded")
  func pingPong() async throws {
    let relay = try await RelayServer.start()
    let (a, inboxA) = try await connect(relay)
    let (_, inboxB) = try await connect(relay)
    a.send(text: "ping")
    a.send(text: "after")
    try await inboxA.wait("pong") { $0.messages.contains { $0.body == "pong" } }
    try await inboxB.wait("the next frame") { $0.messageCount == 1 }
    #expect(inboxB.messages.map(\.body) == ["after"])
    #expect(await relay.stats().pings == 1)
    await relay.close()
  }

  @Test("KSP-11.4: the first frame on a connection is one server_info")
  func serverInfoFirst() async throws {
    let relay = try await RelayServer.start()
    let (_, inbox) = try await connect(relay)
    let first = try #require(inbox.frames.first)
    let parsed = try JSONSerialization.jsonObject(with: Data(first.body.utf8)) as? [String: Any]
    #expect(parsed?["type"] as? String == "server_info")
    #expect(first.text)
    await relay.close()
  }

  @Test("KSP-11.5: without a valid token the upgrade gets HTTP 401; query and bearer tokens admit")
  func tokenRefused() async throws {
    let relay = try await RelayServer.start(configuration: .init(token: "s3cret"))
    let url = try RelayURL(relay.url)
    for token in [nil, "wrong", "s3cre"] {
      await #expect(throws: RelayError.refused(url.description, status: 401)) {
        _ = try await RelayClient.connect(to: url, token: token, handler: { _ in })
      }
    }
    let (a, _) = try await connect(relay, token: "s3cret")
    let (_, inbox) = try await connect(relay, token: "s3cret")
    a.send(text: "admitted")
    try await inbox.wait("the admitted frame") { $0.messageCount == 1 }
    let stats = await relay.stats()
    #expect(stats.refused == 3)
    #expect(stats.admitted == 2)
    await relay.close()
  }

  /// Counts what the relay says became of each frame it routed.
  final class OutcomeCounter: RelayPolicy, Sendable {
    let counts = Mutex<(written: Int, dropped: Int)>((0, 0))
    func received(from: String, text: Bool, bytes: ByteBuffer) {}
    func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute { .deliver }
    func outcome(frame: Int, to: String, written: Bool) {
      counts.withLock { written ? ($0.written += 1) : ($0.dropped += 1) }
    }
  }

  @Test("KSP-11.6: a stalled receiver does not hold up the others; what it cannot take is dropped and counted")
  func stalledReceiver() async throws {
    var configuration = RelayConfiguration(maxBufferedBytes: 256 << 10)
    configuration.sendBufferBytes = 64 << 10
    let outcomes = OutcomeCounter()
    let relay = try await RelayServer.start(configuration: configuration, policy: outcomes)
    let (a, _) = try await connect(relay)
    let stalledInbox = Inbox()
    let stalled = try await RelayClient.connect(
      to: try RelayURL(relay.url), receiveBufferBytes: 32 << 10, handler: stalledInbox.handle)
    try await stalledInbox.wait("server_info") { !$0.frames.isEmpty }
    let (_, inbox) = try await connect(relay)
    stalled.reading(false)
    try await Task.sleep(for: .milliseconds(20))
    let frame = ByteBuffer(repeating: 0x61, count: 64 << 10)
    let count = 64  // 4 MiB: beyond the relay's 256 KiB, its 64 KiB socket buffer and the reader's 32 KiB
    // Paced by the reading receiver, which must lose nothing; the stalled one falls behind.
    // Batches of 128 KiB: within the reading receiver's 256 KiB queue.
    for batch in 1...(count / 2) {
      a.send(batch: Array(repeating: frame, count: 2), text: false)
      try await inbox.wait("batch \(batch) at the reading receiver") { $0.messageCount == batch * 2 }
    }
    let stats = await relay.stats()
    #expect(stats.dropped > 0, "nothing was dropped for the stalled receiver: the relay buffered 40 MiB")
    // The policy (the harness's record of deliveries) hears of every write and every drop.
    let told = outcomes.counts.withLock { $0 }
    #expect(told.dropped == stats.dropped && told.written == stats.framesOut, "\(told) against \(stats)")
    stalled.reading(true)
    try await Task.sleep(for: .milliseconds(300))
    #expect(stalledInbox.messages.count + stats.dropped == count)
    await relay.close()
  }

  @Test("A frame over the size limit closes its sender's connection with 1009")
  func oversizedFrame() async throws {
    let relay = try await RelayServer.start(configuration: .init(maxFrameBytes: 1000))
    let (a, inboxA) = try await connect(relay)
    let (_, inboxB) = try await connect(relay)
    a.send(ByteBuffer(repeating: 0x61, count: 2000), text: true)
    try await inboxA.wait("the close") { $0.closedCode != nil }
    #expect(inboxA.closedCode == 1009)
    #expect(inboxB.messages.isEmpty)
    await relay.close()
  }

  @Test("A relay address that does not answer fails fast, naming it")
  func unreachable() async throws {
    let relay = try await RelayServer.start()
    let url = try RelayURL(relay.url)
    await relay.close()
    await #expect(throws: RelayError.self) {
      _ = try await RelayClient.connect(to: url, deadline: .seconds(2), handler: { _ in })
    }
    #expect(throws: RelayError.self) { try RelayURL("wss://example.org/") }
    #expect(throws: RelayError.self) { try RelayURL("http://example.org/") }
    #expect(throws: RelayError.self) { try RelayURL("ws://:99999/") }
  }
}

@Suite("The reference bus over a relay")
struct WebSocketTransportTests {
  @Test("KSP-3.1, 4.1 over §11: a stream between two buses on WebSocket transports delivers every chunk and the end")
  func streamThroughRelay() async throws {
    let relay = try await RelayServer.start()
    let url = try RelayURL(relay.url)
    let pt = WebSocketTransport(url: url, worker: "producer")
    let ct = WebSocketTransport(url: url, worker: "consumer")
    try await pt.connect()
    try await ct.connect()
    let producer = try MessageBus(name: "producer", transport: pt)
    let consumer = try MessageBus(name: "consumer", transport: ct)
    producer.registerStreamMethod("numbers") { args, stream in
      for i in 0..<300 { try stream.chunk(.int(Int64(i))) }
      try stream.end(.string("done"))
    }
    let got = Mutex<(chunks: [Double], end: JSONValue?)>(([], nil))
    _ = try consumer.callStream(
      "producer", method: "numbers", args: .null,
      callbacks: StreamCallbacks(
        onChunk: { v in got.withLock { $0.chunks.append(v.doubleValue ?? -1) } },
        onEnd: { s in got.withLock { $0.end = s } }))
    let deadline = ContinuousClock.now + .seconds(30)
    while got.withLock({ $0.end == nil }), ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(5))
    }
    #expect(got.withLock { $0.chunks } == (0..<300).map(Double.init))
    #expect(got.withLock { $0.end } == .string("done"))
    #expect(consumer.stats.activeStreams == 0)
    producer.dispose()
    consumer.dispose()
    await relay.close()
  }

  @Test("KSP-1.2 over §11: frames that are no message are dropped and counted; server_info is ignored")
  func junkFramesCounted() async throws {
    let relay = try await RelayServer.start()
    let url = try RelayURL(relay.url)
    let t = WebSocketTransport(url: url, worker: "consumer")
    try await t.connect()
    let bus = try MessageBus(name: "consumer", transport: t)
    let (raw, _) = try await connect(relay)
    raw.send(text: "not json")
    raw.send(text: #"{"type":"server_info"}"#)
    raw.send(ByteBuffer(bytes: [1, 2, 3]), text: false)
    raw.send(text: #"{"messageId":"m","sourceWorker":"x","targetWorker":"consumer","type":"nope","payload":1}"#)
    let deadline = ContinuousClock.now + .seconds(5)
    while bus.stats.dropped[.invalid, default: 0] < 3, ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(5))
    }
    try await Task.sleep(for: .milliseconds(50))
    #expect(bus.stats.dropped[.invalid, default: 0] == 3)
    bus.dispose()
    await relay.close()
  }
}
