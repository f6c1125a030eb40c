import Foundation
import KenshoProtocol
import Testing

@Suite("KSP-1 envelope codec")
struct CodecTests {
  let valid: [String: JSONValue] = [
    "messageId": "m1", "sourceWorker": "producer", "targetWorker": "consumer", "type": "stream_chunk",
    "payload": ["x": 1], "streamId": "s1", "traceId": "t", "metadata": ["seq": 3, "note": "kept"],
  ]

  func decode(_ o: [String: JSONValue], mode: ValidationMode = .received) throws -> Result<
    KenshoMessage, MessageRejection
  > {
    KenshoCodec.decode(try KenshoCodec.encode(.object(o)), mode: mode)
  }

  @Test("KSP-1.1: a message survives encode and decode unchanged")
  func roundTrip() throws {
    let m = try decode(valid).get()
    #expect(m.seq == 3 && m.traceId == "t" && m.metadata?.other == ["note": "kept"])
    #expect(try KenshoCodec.decode(try KenshoCodec.encode(m)).get() == m)
    #expect(KenshoCodec.json(m) == .object(valid))
  }

  @Test("KSP-1.2: every malformed message is a typed rejection naming the JSON path")
  func rejections() throws {
    func expectRejected(
      _ change: (inout [String: JSONValue]) -> Void, _ reason: MessageRejection.Reason, _ path: String
    )
      throws
    {
      var o = valid
      change(&o)
      guard case .failure(let r) = try decode(o) else {
        Issue.record("accepted \(o)")
        return
      }
      #expect(r.reason == reason)
      #expect(r.path == path)
    }
    try expectRejected({ $0["messageId"] = nil }, .missingField, "$.messageId")
    try expectRejected({ $0["payload"] = nil }, .missingField, "$.payload")
    try expectRejected({ $0["sourceWorker"] = 7 }, .wrongType, "$.sourceWorker")
    try expectRejected({ $0["type"] = "stream_bogus" }, .unknownType, "$.type")
    try expectRejected({ $0["targetWorker"] = "no spaces allowed" }, .invalidWorkerName, "$.targetWorker")
    try expectRejected({ $0["messageId"] = .string(String(repeating: "x", count: 257)) }, .invalidId, "$.messageId")
    try expectRejected({ $0["streamId"] = nil }, .missingStreamId, "$.streamId")
    try expectRejected({ $0["metadata"] = ["seq": -1] }, .wrongType, "$.metadata.seq")
    try expectRejected({ $0["error"] = ["name": "E"] }, .missingField, "$.error.message")
    try expectRejected({ $0["type"] = "response" }, .missingCorrelationId, "$.correlationId")
    #expect(KenshoCodec.decode(Data("not json".utf8)).rejection?.reason == .malformedJSON)
    #expect(KenshoCodec.decode(Data("[1]".utf8)).rejection?.reason == .notAnObject)
  }

  @Test("KSP-5.3: a stream_error without error is accepted on receipt, flagged when sent")
  func errorFieldLeniency() throws {
    var o = valid
    o["type"] = "stream_error"
    #expect(try decode(o).rejection == nil)
    #expect(try decode(o, mode: .sent).rejection?.reason == .missingError)
  }

  @Test("worker names follow ^[A-Za-z][A-Za-z0-9_-]{0,63}$")
  func workerNames() {
    for ok in ["a", "Z9", "consumer-0", "a_b", String(repeating: "x", count: 64)] {
      #expect(Envelope.isValidWorkerName(ok))
    }
    for bad in ["", "0a", "-a", "a b", "a.b", "é", String(repeating: "x", count: 65)] {
      #expect(!Envelope.isValidWorkerName(bad), "\(bad)")
    }
  }
}

extension Result {
  var rejection: Failure? {
    if case .failure(let f) = self { return f }
    return nil
  }
}
