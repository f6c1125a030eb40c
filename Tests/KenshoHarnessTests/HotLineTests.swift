import Foundation
import KenshoAdapterProtocol
import KenshoProtocol
import KenshoScenario
import Testing

@testable import KenshoHarness

/// The hot path of adapter output (``HotLine``) against the general path it shortcuts: for every
/// line it reads, the general path must read the same event, and the same message under
/// `ValidationMode.sent`; lines it declines still go to the general path, which says what is
/// wrong with them.
enum HotLineAgreement {
  /// Why the two paths disagree on `line`, or nil when they agree (or the hot path declines it).
  static func disagreement(_ line: [UInt8]) -> String? {
    guard let hot = HotLine.decode(line) else { return nil }
    let general = AdapterProcess.line(from: line, answering: "chunks", source: "line")
    switch (hot, general) {
    case (.send(let w, let m), .success(.event(.send(let gw, let raw)))):
      guard w == gw else { return "worker \(w) against \(gw)" }
      guard case .success(let gm) = KenshoCodec.message(from: raw, mode: .sent) else {
        return "the hot path accepted a message the codec refuses under .sent"
      }
      return gm == m && gm.payload.ijsonFingerprint == m.payload.ijsonFingerprint
        ? nil : "messages differ: \(m) against \(gm)"
    case (.callback(let k, let w, let id, let v), .success(.event(.callback(let gk, let gw, let gid, let gv)))):
      return k == gk && w == gw && id == gid && v == gv && v.ijsonFingerprint == gv.ijsonFingerprint
        ? nil : "callbacks differ: \(hot) against \(general)"
    default:
      return "the hot path read \(hot), the general path \(general)"
    }
  }
}

extension HotLineAgreement {
  /// Why the hot reading of a `deliver` operation differs from the general one, or nil.
  static func deliverDisagreement(_ line: [UInt8]) -> String? {
    guard let (id, worker, messages) = HotLine.deliver(line) else { return nil }
    guard let json = try? JSONText.parse(line), json.allFinite,
      case .success(let (gid, .deliver(gworker, raws))) = AdapterOperation.decode(json, source: "line")
    else { return "the hot path read a deliver the general path refuses" }
    let general = raws.map { KenshoCodec.message(from: $0, mode: .received) }
    guard id == gid, worker == gworker, general.count == messages.count else { return "id, worker or count differ" }
    for (m, g) in zip(messages, general) {
      guard case .success(let gm) = g, gm == m, gm.payload.ijsonFingerprint == m.payload.ijsonFingerprint else {
        return "message differs: \(m) against \(g)"
      }
    }
    return nil
  }
}

@Suite("The hot path of adapter lines agrees with the general path")
struct HotLineTests {
  static let message = KenshoMessage(
    messageId: "m-1", sourceWorker: "producer", targetWorker: "consumer", type: .streamChunk,
    payload: ["token": "a", "n": 1.5], streamId: "s-1", traceId: "t-9", metadata: MessageMetadata(seq: 3))

  static func sendLine(_ m: KenshoMessage = message, worker: String = "producer") throws -> [UInt8] {
    var out: [UInt8] = []
    try AdapterEvent.writeSend(worker: worker, message: m, into: &out)
    return out
  }

  @Test("the lines the reference adapter and the JavaScript adapter write are read by the hot path, alike")
  func canonicalLinesTakeTheHotPath() throws {
    let send = try Self.sendLine()
    guard case .send(let worker, let m)? = HotLine.decode(send) else {
      Issue.record("not read: \(String(decoding: send, as: UTF8.self))")
      return
    }
    #expect(worker == "producer" && m == Self.message && m.seq == 3 && m.traceId == "t-9")
    var chunk: [UInt8] = []
    try AdapterEvent.callback(.chunk, worker: "consumer", streamId: "s-1", value: ["token": "a"]).write(into: &chunk)
    #expect(HotLine.decode(chunk) == .callback(.chunk, worker: "consumer", streamId: "s-1", value: ["token": "a"]))
    // As JSON.stringify writes them: other member orders, spaces allowed by JSON.
    let js =
      #"{ "worker" : "producer", "message": {"payload":{"token":"a","n":1.5},"streamId":"s-1","type":"stream_chunk","messageId":"m-1","sourceWorker":"producer","targetWorker":"consumer","metadata":{"seq":3},"traceId":"t-9","timestamp":17}, "event":"send" }"#
    #expect(HotLine.decode(Array(js.utf8)) == .send(worker: "producer", message: Self.message))
    let end = #"{"event":"end","worker":"consumer","streamId":null,"summary":{"n":40}}"#
    #expect(HotLine.decode(Array(end.utf8)) == .callback(.end, worker: "consumer", streamId: nil, value: ["n": 40]))
    for line in [send, chunk, Array(js.utf8), Array(end.utf8)] {
      #expect(HotLineAgreement.disagreement(line) == nil)
    }
  }

  @Test(
    "lines the hot path declines go to the general path: escapes, repeats, unknown members, bad values",
    arguments: [
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m\u002d1","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","type":"stream_end","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"producer","extra":1,"message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1e999}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1,"other":-1e400}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","payload":1}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_error","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":null}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"9bad","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1,"metadata":{"seq":-1}}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"nope","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}} x"#,
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}"#,
      #"{"event":"chunk","worker":"consumer","streamId":"s","data":1,"summary":2}"#,
      #"{"event":"chunk","worker":"consumer","streamId":"s","summary":2}"#,
      #"{"event":"chunk","worker":"consumer","data":2}"#,
      #"{"event":"chunk","worker":"consumer","streamId":"","data":2}"#,
      #"{"event":"chunk","worker":"consumer","streamId":"s","data":[1,2"#,
      #"{"event":"handler","worker":"producer","method":"m","streamId":"s","args":1}"#,
      #"{"event":"ack","id":3,"nextTimerMs":null}"#,
    ])
  func declined(_ line: String) {
    #expect(HotLine.decode(Array(line.utf8)) == nil, "read: \(line)")
  }

  @Test(
    "deliver lines the hot path declines go to the general path",
    arguments: [
      #"{"id":-1,"messages":[],"op":"deliver","worker":"w"}"#,
      #"{"id":1.0,"messages":[],"op":"deliver","worker":"w"}"#,
      #"{"id":01,"messages":[],"op":"deliver","worker":"w"}"#,
      #"{"id":9007199254740992,"messages":[],"op":"deliver","worker":"w"}"#,
      #"{"id":1,"messages":[1],"op":"deliver","worker":"w"}"#,
      #"{"id":1,"messages":[{"type":"stream_chunk","messageId":"m","sourceWorker":"p","targetWorker":"w","payload":1}],"op":"deliver","worker":"w"}"#,
      #"{"id":1,"messages":[],"op":"deliver","worker":"w","extra":0}"#,
      #"{"id":1,"messages":[],"op":"chunks","worker":"w"}"#,
      #"{"id":1,"messages":[],"op":"deliver"}"#,
      #"{"id":1,"messages":[],"op":"deliver","worker":"w"} ,"#,
    ])
  func deliverDeclined(_ line: String) {
    #expect(HotLine.deliver(Array(line.utf8)) == nil, "read: \(line)")
  }

  @Test("a plain deliver is read, empty or not, as the general path reads it")
  func deliverRead() throws {
    let empty = #"{"id":7,"messages":[ ],"op":"deliver","worker":"consumer"}"#
    #expect(HotLine.deliver(Array(empty.utf8))?.messages.isEmpty == true)
    var line: [UInt8] = []
    try AdapterOperation.writeDeliver(id: 12, worker: "consumer", messages: [Self.message, Self.message], into: &line)
    let read = HotLine.deliver(line)
    #expect(read?.id == 12 && read?.worker == "consumer" && read?.messages == [Self.message, Self.message])
    #expect(HotLineAgreement.deliverDisagreement(line) == nil)
  }

  @Test("random messages written every way an adapter may write them read the same on both paths")
  func differential() throws {
    var rng = SplitMix64(seed: 29)
    var read = 0
    var delivered = 0
    let types = MessageType.allCases
    for i in 0..<4000 {
      let type = types[Int.random(in: 0..<types.count, using: &rng)]
      let payloads: [JSONValue] = [
        .null, 0, -7, .double(0.1), 9_007_199_254_740_993, "é ✓ \"q\"", [1, [2, [3]]], ["a": ["b": .null]],
        .double(1e300), .string(String(repeating: "x", count: Int.random(in: 0...300, using: &rng))),
      ]
      let m = KenshoMessage(
        messageId: i % 97 == 0 ? "" : "m-\(i)", sourceWorker: i % 89 == 0 ? "9x" : "producer",
        targetWorker: i % 5 == 0 ? "*" : "consumer", type: type,
        payload: payloads[Int.random(in: 0..<payloads.count, using: &rng)],
        streamId: i % 7 == 0 ? nil : "s-\(i % 13)", traceId: i % 3 == 0 ? "t" : nil,
        correlationId: i % 11 == 0 ? "c-\(i)" : nil,
        error: type == .streamError && i % 2 == 0 ? SerializedError(message: "boom", code: "X") : nil,
        metadata: i % 4 == 0 ? nil : MessageMetadata(seq: i % 50, credit: i % 6 == 0 ? 8 : nil))
      var line = try Self.sendLine(m)
      if i % 10 == 0 {
        // Spaces where JSON allows them.
        line = Array(String(decoding: line, as: UTF8.self).replacing(",\"", with: " ,\n\"").utf8)
      }
      if let why = HotLineAgreement.disagreement(line) {
        Issue.record("message \(i): \(why)")
        return
      }
      if HotLine.decode(line) != nil { read += 1 }
      // The same message delivered, alone or after another, as the harness writes deliver.
      var deliver: [UInt8] = []
      try AdapterOperation.writeDeliver(
        id: i, worker: "consumer", messages: i % 2 == 0 ? [m] : [Self.message, m], into: &deliver)
      if let why = HotLineAgreement.deliverDisagreement(deliver) {
        Issue.record("deliver \(i): \(why)")
        return
      }
      if HotLine.deliver(deliver) != nil { delivered += 1 }
    }
    #expect(read > 2000, "the hot path read only \(read) of 4000 lines")
    #expect(delivered > 2000, "the hot path read only \(delivered) of 4000 deliveries")
  }

  /// Whether the general path reads `line` as a `send` whose message is valid as sent.
  static func generalAccepts(_ line: String) -> Bool {
    let general = AdapterProcess.line(from: Array(line.utf8), answering: "chunks", source: "line")
    guard case .success(.event(.send(_, let raw))) = general,
      case .success = KenshoCodec.message(from: raw, mode: .sent)
    else { return false }
    return true
  }

  @Test(
    "metadata forms: the plain {\"seq\": N} the hot path reads itself, and every other, read as the general path reads them",
    arguments: [
      (#"{"seq":0}"#, true), (#"{"seq":7}"#, true), (#"{ "seq" : 12 }"#, true), (#"{"seq":123456789012345}"#, true),
      (#"{"seq":1234567890123456}"#, true), (#"{"seq":3,"credit":2}"#, true), (#"{"credit":2,"seq":3}"#, true),
      (#"{"seq":1.0}"#, true), (#"{"seq":1e2}"#, true), (#"{"seq":-0}"#, true), (#"{}"#, true),
      (#"{"seq":3,"hint":"x"}"#, true), (#"{"seq":007}"#, false), (#"{"seq":-1}"#, false), (#"{"seq":"3"}"#, false),
      (#"{"seq":99999999999999999999}"#, false), (#"{"seq":1.5}"#, false), (#"{"seq":3"#, false),
      (#"{"seq":}"#, false), (#"{"seq":3,"seq":4}"#, true), (#"null"#, false),
    ])
  func metadataForms(_ metadata: String, readable: Bool) {
    let line =
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1,"metadata":"#
      + metadata + "}}"
    #expect(HotLineAgreement.disagreement(Array(line.utf8)) == nil, "\(metadata)")
    // Readable forms are read by one path or the other; the rest are refused by both.
    let accepted = Self.generalAccepts(line)
    #expect(accepted == readable, "\(metadata): general path accepted \(accepted)")
    if !readable { #expect(HotLine.decode(Array(line.utf8)) == nil, "\(metadata)") }
    if metadata == #"{"seq":7}"#, case .send(_, let m)? = HotLine.decode(Array(line.utf8)) {
      #expect(m.seq == 7 && m.metadata == MessageMetadata(seq: 7))
    } else if metadata == #"{"seq":7}"# {
      Issue.record("the plain seq form was not read by the hot path")
    }
  }

  @Test("every message type name, and names that are not one, read as MessageType(rawValue:) reads them")
  func typeNames() {
    let names =
      MessageType.allCases.map(\.rawValue) + ["Request", "stream_chunk ", "stream_chunks", "stream", "", "stream_erro"]
    for name in names {
      let line =
        #"{"event":"send","worker":"producer","message":{"type":""# + name
        + #"","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#
      #expect(HotLineAgreement.disagreement(Array(line.utf8)) == nil, "\(name)")
      if case .send(_, let m)? = HotLine.decode(Array(line.utf8)) {
        #expect(MessageType(rawValue: name) == m.type, "\(name)")
      } else {
        // A plain line is declined only when the general path refuses it too.
        #expect(!Self.generalAccepts(line), "\(name)")
      }
    }
    // Each stream type with what it needs is read by the hot path.
    for type in [MessageType.streamChunk, .streamEnd, .streamCancel, .streamRequest] {
      let line =
        #"{"event":"send","worker":"producer","message":{"type":""# + type.rawValue
        + #"","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":1}}"#
      #expect(HotLine.decode(Array(line.utf8)) != nil, "\(type)")
    }
  }

  @Test(
    "a message nests at most 500 deep on both paths: read at 500, refused by both at 501, so that a deliver line can carry it"
  )
  func messageNesting() {
    func deep(_ n: Int) -> String { String(repeating: "[", count: n) + "1" + String(repeating: "]", count: n) }
    func send(payloadNesting n: Int) -> String {
      #"{"event":"send","worker":"producer","message":{"type":"stream_chunk","messageId":"m","sourceWorker":"producer","targetWorker":"consumer","streamId":"s","payload":"#
        + deep(n) + "}}"
    }
    // The message is one level more than its payload.
    #expect(HotLine.decode(Array(send(payloadNesting: 499).utf8)) != nil)
    #expect(Self.generalAccepts(send(payloadNesting: 499)))
    #expect(HotLine.decode(Array(send(payloadNesting: 500).utf8)) == nil)
    let general = AdapterProcess.line(from: Array(send(payloadNesting: 500).utf8), answering: "chunks", source: "line")
    if case .failure(let problem) = general {
      #expect(problem.description.contains("$.message: expected a KenshoMessage nesting at most 500"), "\(problem)")
    } else {
      Issue.record("a message nesting 501 deep was read: \(general)")
    }
    // A callback's value: 500 deep read, 501 refused, on both paths.
    func chunk(_ n: Int) -> String { #"{"event":"chunk","worker":"consumer","streamId":"s","data":"# + deep(n) + "}" }
    #expect(HotLine.decode(Array(chunk(500).utf8)) != nil)
    #expect(HotLineAgreement.disagreement(Array(chunk(500).utf8)) == nil)
    #expect(HotLine.decode(Array(chunk(501).utf8)) == nil)
    if case .success = AdapterProcess.line(from: Array(chunk(501).utf8), answering: "chunks", source: "line") {
      Issue.record("a callback value nesting 501 deep was read")
    }
    // What the harness writes for the deepest message it accepts stays within JSONText.maxDepth.
    var deliver: [UInt8] = []
    if case .send(_, let m)? = HotLine.decode(Array(send(payloadNesting: 499).utf8)) {
      try? AdapterOperation.writeDeliver(id: 1, worker: "consumer", messages: [m], into: &deliver)
    }
    #expect(HotLine.deliver(deliver)?.messages.count == 1)
    #expect((try? JSONText.parse(deliver)) != nil)
  }
}
