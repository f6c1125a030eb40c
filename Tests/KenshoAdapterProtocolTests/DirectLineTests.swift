import KenshoProtocol
import Testing

@testable import KenshoAdapterProtocol

/// The hot paths of the harness (deliver) and of the reference adapter (events) write their
/// lines without making JSON objects; the bytes must be those of the declared JSON.
@Suite("Adapter lines written directly")
struct DirectLineTests {
  static let messages = [
    KenshoMessage(
      messageId: "m1", sourceWorker: "p", targetWorker: "c", type: .streamChunk,
      payload: .object(["t": .string("é\n")]),
      streamId: "s1", traceId: "t1", metadata: MessageMetadata(seq: 7)),
    KenshoMessage(
      messageId: "m2", sourceWorker: "p", targetWorker: "c", type: .streamError, streamId: "s\"1",
      error: SerializedError(name: "E", message: "boom", code: "STREAM_ERROR"),
      metadata: MessageMetadata(credit: 4, other: ["x": .array([.int(-3), .double(0.5)])])),
    KenshoMessage(messageId: "", sourceWorker: "", targetWorker: "*", type: .broadcast, correlationId: "c"),
  ]

  @Test("a deliver line written from its messages is the JSON of the same deliver operation")
  func deliverAgrees() throws {
    for count in 0...Self.messages.count {
      let some = Array(Self.messages.prefix(count))
      var direct: [UInt8] = []
      try AdapterOperation.writeDeliver(id: 41 + count, worker: "w\u{1}", messages: some, into: &direct)
      let declared = AdapterOperation.deliver(worker: "w\u{1}", messages: some.map(KenshoCodec.json))
      #expect(direct == (try JSONText.serialize(declared.json(id: 41 + count))))
    }
  }

  @Test("every event's line written directly is its JSON, and a send written from its message too")
  func eventsAgree() throws {
    let events: [AdapterEvent] = [
      .send(worker: "w", message: KenshoCodec.json(Self.messages[0])),
      .handler(worker: "w", method: "m", streamId: "s", args: .array([.null])),
      .callback(.chunk, worker: "w", streamId: "s", value: .string("x")),
      .callback(.end, worker: "w", streamId: nil, value: .object(["n": .int(1)])),
      .callback(.error, worker: "w", streamId: "s", value: .object(["name": .string("E")])),
      .credit(worker: "w", streamId: "s"),
      .log(worker: nil, message: "hi\t"),
      .log(worker: "w", message: ""),
    ]
    for event in events {
      var direct: [UInt8] = []
      try event.write(into: &direct)
      #expect(direct == (try JSONText.serialize(event.json)), "\(event.name)")
    }
    for message in Self.messages {
      var direct: [UInt8] = []
      try AdapterEvent.writeSend(worker: "w\"", message: message, into: &direct)
      let declared = AdapterEvent.send(worker: "w\"", message: KenshoCodec.json(message))
      #expect(direct == (try JSONText.serialize(declared.json)))
    }
  }
}

/// The fast recognition of common lines never accepts what the declaration refuses, and gives
/// what the checker gives.
@Suite("Common lines recognised fast")
struct CommonLineTests {
  static let long256 = String(repeating: "w", count: 256)
  static let long257 = String(repeating: "w", count: 257)

  /// Lines near the edges of the declaration: names, members, bounds.
  static var corpus: [[String: JSONValue]] {
    var lines: [[String: JSONValue]] = []
    let workers: [JSONValue?] = [
      .string("w"), .string(""), .string(long256), .string(long257), .string("é日"),
      .string(String(repeating: "é", count: 200)), .int(1), nil,
    ]
    let streamIds: [JSONValue?] = [
      .string("s"), .null, .string(""), .string(String(repeating: "s", count: 1025)), .int(3), nil,
    ]
    for worker in workers {
      var base: [String: JSONValue] = [:]
      if let worker { base["worker"] = worker }
      for event in ["send", "chunk", "end", "error", "credit", "log", "handler", "ack", "nope"] {
        var send = base
        send["event"] = .string(event)
        send["message"] = .object(["type": .string("request")])
        lines.append(send)
        var extra = send
        extra["more"] = .null
        lines.append(extra)
        for streamId in streamIds {
          for member in ["data", "summary", "error"] {
            var callback = base
            callback["event"] = .string(event)
            if let streamId { callback["streamId"] = streamId }
            callback[member] = .array([.int(1)])
            lines.append(callback)
          }
        }
      }
    }
    return lines
  }

  @Test("what the fast path accepts, the declaration's checker accepts as the same line; the rest is left to it")
  func fastPathAgreesWithTheChecker() {
    var accepted = 0
    var leftToChecker = 0
    for line in Self.corpus {
      let checked = AdapterLine.checked(.object(line), answering: "deliver", source: "test")
      guard let fast = AdapterLine.common(line) else {
        if case .success = checked { leftToChecker += 1 }
        continue
      }
      accepted += 1
      guard case .success(let slow) = checked else {
        Issue.record("the fast path accepted a line the declaration refuses: \(line)")
        continue
      }
      #expect(slow == fast, "\(line)")
    }
    #expect(accepted >= 20, "the corpus exercises the fast path (\(accepted))")
    #expect(leftToChecker > 0, "valid lines outside the fast path reach the checker (\(leftToChecker))")
  }
}
