import KenshoProtocol
import Testing

/// The hot paths write messages without making their JSON objects; what they write must be
/// what `JSONText.serialize` writes for the same value, byte for byte.
@Suite("Direct JSON writers")
struct DirectWriterTests {
  /// A random message: every optional field present or not, strings and payloads that need escapes.
  static func randomMessage(_ rng: inout some RandomNumberGenerator) -> KenshoMessage {
    func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &rng) ? make() : nil }
    let words = ["w1", "é", "\"q\"", "line\nbreak", "\u{1}", "😀", ""]
    func word() -> String { words.randomElement(using: &rng) ?? "" }
    let metadata = maybe {
      MessageMetadata(
        seq: maybe { Int.random(in: -5...Int.max, using: &rng) },
        credit: maybe { Int.random(in: 0...1000, using: &rng) },
        other: Bool.random(using: &rng) ? [:] : ["hint": JSONTextTests.random(&rng), "zz": .int(1)])
    }
    return KenshoMessage(
      messageId: word(), sourceWorker: word(), targetWorker: word(),
      type: MessageType.allCases.randomElement(using: &rng) ?? .request, payload: JSONTextTests.random(&rng),
      streamId: maybe(word), traceId: maybe(word), correlationId: maybe(word),
      error: maybe { SerializedError(name: word(), message: word(), code: maybe(word), stack: maybe(word)) },
      metadata: metadata)
  }

  @Test("KenshoCodec.write writes what serialize writes for the message's JSON, for 5 000 random messages")
  func messageWriterAgrees() throws {
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<5_000 {
      let message = Self.randomMessage(&rng)
      var direct: [UInt8] = []
      try KenshoCodec.write(message, into: &direct)
      let expected = try JSONText.serialize(KenshoCodec.json(message))
      #expect(direct == expected, "\(String(decoding: direct, as: UTF8.self))")
      if direct != expected { return }
    }
  }

  @Test("integers at the edges of Int64 and of the 18-digit fast path are written and read exactly")
  func integerEdges() throws {
    let edges: [Int64] = [
      0, -1, 9, 10, -10, 999_999_999_999_999_999, -99_999_999_999_999_999, 1_000_000_000_000_000_000,
      9_999_999_999_999_999, 10_000_000_000_000_000, -10_000_000_000_000_000, .max, .min, .max - 1, .min + 1,
    ]
    for i in edges {
      let text = try JSONText.serialize(.int(i))
      #expect(String(decoding: text, as: UTF8.self) == String(i))
      #expect(try JSONText.parse(text) == .int(i))
    }
    // Past Int64: a double, as before.
    #expect(try JSONText.parse(Array("9223372036854775808".utf8)) == .double(9_223_372_036_854_775_808))
    #expect(try JSONText.parse(Array("-0".utf8)) == .int(0))
  }

  @Test("writeObject writes what serialize writes for the same object")
  func objectWriterAgrees() throws {
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<2_000 {
      guard case .object(let members) = JSONValue.object(["b": JSONTextTests.random(&rng), "a": .null, "é": .int(3)])
      else { continue }
      var direct: [UInt8] = []
      try JSONText.writeObject(members.shuffled(using: &rng).map { ($0.key, $0.value) }, into: &direct)
      #expect(direct == (try JSONText.serialize(.object(members))))
    }
  }
}
