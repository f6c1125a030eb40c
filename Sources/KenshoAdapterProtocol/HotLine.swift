import Glibc
public import KenshoProtocol

/// The two lines that make up nearly all of an adapter's output under load, `send` and the
/// consumer callbacks (`chunk`, `end`, `error`), read straight from their bytes: the envelope
/// of a sent message becomes a ``KenshoMessage`` without the dictionaries of a general parse.
///
/// It is a shortcut, never a second judge: it accepts only lines it reads exactly as the
/// general path does (``JSONText/parse(_:)``, then ``AdapterLine/decode(_:answering:source:)``,
/// then ``KenshoCodec/message(from:mode:)`` under ``ValidationMode/sent``), and returns nil for
/// anything else (an escape in a name, a repeated member, a number out of range, a message
/// that breaks a rule), which the general path then reads and, where it must, refuses with the
/// JSON path of the problem. A differential test holds the two paths to the same results.
public enum HotLine: Sendable, Hashable {
  /// A `send` event whose message is valid as sent (KSP-1.1).
  case send(worker: String, message: KenshoMessage)
  case callback(CallbackEvent, worker: String, streamId: String?, value: JSONValue)

  /// The line, read without the general checker, or nil when it is not plainly one of these.
  public static func decode(_ line: [UInt8]) -> HotLine? {
    line.withUnsafeBufferPointer { bytes in
      var reader = Reader(bytes: bytes)
      return reader.line()
    }
  }

  /// The harness's `deliver` operation, as an implementation reads it: its id, its worker and
  /// its messages, each as ``KenshoCodec/message(from:mode:)`` reads it under
  /// ``ValidationMode/received``; nil when the line is not plainly that, or when a message would
  /// be refused (the general path then checks the line and drops what the bus would drop).
  public static func deliver(_ line: [UInt8]) -> (id: Int, worker: String, messages: [KenshoMessage])? {
    line.withUnsafeBufferPointer { bytes in
      var reader = Reader(bytes: bytes)
      return reader.deliver()
    }
  }

  /// The message type these bytes name, as `MessageType(rawValue:)` reads them, without a String.
  static func messageType(_ n: UnsafeBufferPointer<UInt8>) -> MessageType? {
    switch n.count {
    case 7: equals(n, "request") ? .request : nil
    case 8: equals(n, "response") ? .response : nil
    case 9: equals(n, "broadcast") ? .broadcast : nil
    case 10: equals(n, "stream_end") ? .streamEnd : nil
    case 12: equals(n, "stream_chunk") ? .streamChunk : equals(n, "stream_error") ? .streamError : nil
    case 13: equals(n, "stream_cancel") ? .streamCancel : nil
    case 14: equals(n, "stream_request") ? .streamRequest : nil
    default: nil
    }
  }

  /// Whether `bytes` are the UTF-8 of `word`.
  static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
    guard bytes.count == word.utf8CodeUnitCount else { return false }
    guard let base = bytes.baseAddress else { return true }
    return memcmp(base, word.utf8Start, bytes.count) == 0
  }

  /// Members of the line and of the message, as bits, to see each at most once.
  private enum Member: Int {
    case event, worker, message, streamId, data, summary, error
    case type, messageId, sourceWorker, targetWorker, payload, metadata, traceId, correlationId, other
    case id, messages, op

    static func line(_ n: UnsafeBufferPointer<UInt8>) -> Member? {
      switch n.count {
      case 4: equals(n, "data") ? .data : nil
      case 5: equals(n, "event") ? .event : equals(n, "error") ? .error : nil
      case 6: equals(n, "worker") ? .worker : nil
      case 7: equals(n, "message") ? .message : equals(n, "summary") ? .summary : nil
      case 8: equals(n, "streamId") ? .streamId : nil
      default: nil
      }
    }

    /// A member of the envelope; `.other` for one KenshoCodec does not read.
    static func envelope(_ n: UnsafeBufferPointer<UInt8>) -> Member {
      switch n.count {
      case 4: equals(n, "type") ? .type : .other
      case 5: equals(n, "error") ? .error : .other
      case 7: equals(n, "payload") ? .payload : equals(n, "traceId") ? .traceId : .other
      case 8: equals(n, "streamId") ? .streamId : equals(n, "metadata") ? .metadata : .other
      case 9: equals(n, "messageId") ? .messageId : .other
      case 12: equals(n, "sourceWorker") ? .sourceWorker : equals(n, "targetWorker") ? .targetWorker : .other
      case 13: equals(n, "correlationId") ? .correlationId : .other
      default: .other
      }
    }

    /// A member of an operation line (`deliver`).
    static func operation(_ n: UnsafeBufferPointer<UInt8>) -> Member? {
      switch n.count {
      case 2: equals(n, "id") ? .id : equals(n, "op") ? .op : nil
      case 6: equals(n, "worker") ? .worker : nil
      case 8: equals(n, "messages") ? .messages : nil
      default: nil
      }
    }
  }

  private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    var at = 0

    mutating func skipSpace() {
      while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 {
        at += 1
      }
    }

    mutating func expect(_ c: UInt8) -> Bool {
      skipSpace()
      guard at < bytes.count, bytes[at] == c else { return false }
      at += 1
      return true
    }

    /// A string without escapes or control characters: its bytes, between the quotes.
    mutating func plain() -> UnsafeBufferPointer<UInt8>? {
      guard expect(UInt8(ascii: "\"")) else { return nil }
      let start = at
      while at < bytes.count {
        let c = bytes[at]
        if c == UInt8(ascii: "\"") {
          at += 1
          return UnsafeBufferPointer(rebasing: bytes[start..<(at - 1)])
        }
        if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
        at += 1
      }
      return nil
    }

    /// A plain string as the general parser makes it (invalid UTF-8 repaired the same way).
    mutating func text() -> String? {
      plain().map { String(decoding: $0, as: UTF8.self) }
    }

    /// Any value, by the general parser, `depth` deep as it would count; nil if it is not
    /// JSON or holds a number no double can carry (the general path refuses the line).
    ///
    /// `limit`: the deepest array or object allowed, as the general parser counts depth; by
    /// default a value of its own nesting at most ``JSONText/maxValueNesting`` (as the
    /// declaration's `.any` allows).
    mutating func value(depth: Int, limit: Int? = nil) -> JSONValue? {
      guard
        let v = try? JSONText.value(
          in: bytes, at: &at, depth: depth, maxDepth: limit ?? depth + JSONText.maxValueNesting),
        v.allFinite
      else { return nil }
      return v
    }

    /// `{"seq": N}` with N plain digits (what a chunk's metadata is), as
    /// ``KenshoCodec/metadata(_:)`` reads it; nil, and nothing read, for anything else.
    mutating func seqOnly() -> Int? {
      var r = self
      guard r.expect(UInt8(ascii: "{")), let name = r.plain(), equals(name, "seq"), r.expect(UInt8(ascii: ":")) else {
        return nil
      }
      r.skipSpace()
      let start = r.at
      while r.at < r.bytes.count, r.at - start <= 15, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.at]) {
        r.at += 1
      }
      let digits = r.at - start
      // One to 15 digits, no leading zero: an exact integer whatever reads it.
      guard digits >= 1, digits <= 15, digits == 1 || r.bytes[start] != UInt8(ascii: "0") else { return nil }
      guard r.expect(UInt8(ascii: "}")) else { return nil }
      var n = 0
      for k in start..<(start + digits) { n = n &* 10 &+ Int(r.bytes[k] &- 0x30) }
      self = r
      return n
    }

    /// Reads `{ "name": value, ... }`, each member through `member`; false at anything else.
    mutating func object(_ member: (inout Reader, UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
      guard expect(UInt8(ascii: "{")) else { return false }
      skipSpace()
      if at < bytes.count, bytes[at] == UInt8(ascii: "}") {
        at += 1
        return true
      }
      while true {
        guard let name = plain(), expect(UInt8(ascii: ":")), member(&self, name) else { return false }
        skipSpace()
        guard at < bytes.count else { return false }
        at += 1
        if bytes[at - 1] == UInt8(ascii: "}") { return true }
        guard bytes[at - 1] == UInt8(ascii: ",") else { return false }
      }
    }

    mutating func line() -> HotLine? {
      var seen = 0
      var event: UnsafeBufferPointer<UInt8>?
      var worker: String?
      var message: KenshoMessage?
      var streamId: String??
      var value: JSONValue?
      var valueMember: Member?
      let read = object { r, name in
        guard let m = Member.line(name), seen & (1 << m.rawValue) == 0 else { return false }
        seen |= 1 << m.rawValue
        switch m {
        case .event:
          event = r.plain()
          return event != nil
        case .worker:
          worker = r.text()
          return worker != nil
        case .message:
          message = r.envelope(.sent, depth: 1)
          return message != nil
        case .streamId:
          r.skipSpace()
          if r.at + 4 <= r.bytes.count, equals(UnsafeBufferPointer(rebasing: r.bytes[r.at..<(r.at + 4)]), "null") {
            r.at += 4
            streamId = .some(nil)
            return true
          }
          guard let id = r.text() else { return false }
          streamId = .some(id)
          return true
        default:
          valueMember = m
          value = r.value(depth: 1)
          return value != nil
        }
      }
      guard read else { return nil }
      skipSpace()
      guard at == bytes.count, let event, let worker, (1...256).contains(worker.utf8.count) else { return nil }
      if equals(event, "send") {
        guard seen == (1 << Member.event.rawValue | 1 << Member.worker.rawValue | 1 << Member.message.rawValue),
          let message
        else { return nil }
        return .send(worker: worker, message: message)
      }
      let kind: CallbackEvent
      let name: StaticString
      switch valueMember {
      case .data?: (kind, name) = (.chunk, "chunk")
      case .summary?: (kind, name) = (.end, "end")
      case .error?: (kind, name) = (.error, "error")
      default: return nil
      }
      guard equals(event, name), let value, let streamId,
        seen == (1 << Member.event.rawValue | 1 << Member.worker.rawValue | 1 << Member.streamId.rawValue)
          | 1 << (valueMember?.rawValue ?? 0)
      else { return nil }
      if let id = streamId, !(1...1024).contains(id.utf8.count) { return nil }
      return .callback(kind, worker: worker, streamId: streamId, value: value)
    }

    /// A message as ``KenshoCodec/message(from:mode:)`` reads it under `.sent`, or nil when it
    /// would not accept it (left to the general path to say why).
    /// The `deliver` operation: `{"id": N, "messages": [...], "op": "deliver", "worker": W}`.
    mutating func deliver() -> (id: Int, worker: String, messages: [KenshoMessage])? {
      var seen = 0
      var id: Int?
      var op: UnsafeBufferPointer<UInt8>?
      var worker: String?
      var messages: [KenshoMessage] = []
      let read = object { r, name in
        guard let m = Member.operation(name), seen & (1 << m.rawValue) == 0 else { return false }
        seen |= 1 << m.rawValue
        switch m {
        case .id:
          id = r.identifier()
          return id != nil
        case .op:
          op = r.plain()
          return op != nil
        case .worker:
          worker = r.text()
          return worker != nil
        default:
          guard r.expect(UInt8(ascii: "[")) else { return false }
          r.skipSpace()
          if r.at < r.bytes.count, r.bytes[r.at] == UInt8(ascii: "]") {
            r.at += 1
            return true
          }
          while true {
            guard let message = r.envelope(.received, depth: 2) else { return false }
            messages.append(message)
            r.skipSpace()
            guard r.at < r.bytes.count else { return false }
            r.at += 1
            if r.bytes[r.at - 1] == UInt8(ascii: "]") { return true }
            guard r.bytes[r.at - 1] == UInt8(ascii: ",") else { return false }
          }
        }
      }
      guard read else { return nil }
      skipSpace()
      guard at == bytes.count, let id, let op, equals(op, "deliver"), let worker,
        (1...256).contains(worker.utf8.count),
        seen == (1 << Member.id.rawValue | 1 << Member.op.rawValue | 1 << Member.worker.rawValue)
          | 1 << Member.messages.rawValue
      else { return nil }
      return (id, worker, messages)
    }

    /// An operation's id: plain digits (no sign, fraction or exponent), within the protocol's range.
    mutating func identifier() -> Int? {
      skipSpace()
      let start = at
      while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
      let digits = at - start
      guard digits >= 1, digits <= 16, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
      if at < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[at]) {
        return nil
      }
      var n = 0
      for k in start..<at { n = n * 10 + Int(bytes[k] &- 0x30) }
      return n <= AdapterProtocolFormat.maxId ? n : nil
    }

    /// A message object held by a container `depth` deep (the line's object is 1, an array in it
    /// 2), as ``KenshoCodec`` reads it under `mode`; nil when it would refuse it.
    mutating func envelope(_ mode: ValidationMode, depth: Int) -> KenshoMessage? {
      var seen = 0
      // The message nests at most JSONText.maxValueNesting deep, its own object (at `depth` + 1)
      // counted: what the declaration's `.any` lets the general path accept.
      let limit = depth + JSONText.maxValueNesting
      var type: MessageType?
      var messageId: String?
      var source: String?
      var target: String?
      var streamId: String?
      var traceId: String?
      var correlationId: String?
      var payload: JSONValue?
      var metadata: MessageMetadata?
      var error: SerializedError?
      let read = object { r, name in
        let m = Member.envelope(name)
        // A member the codec does not read must still be JSON.
        if m == .other { return r.value(depth: depth + 1, limit: limit) != nil }
        guard seen & (1 << m.rawValue) == 0 else { return false }
        seen |= 1 << m.rawValue
        switch m {
        case .type:
          type = r.plain().flatMap(HotLine.messageType)
          return type != nil
        case .payload:
          payload = r.value(depth: depth + 1, limit: limit)
          return payload != nil
        case .metadata:
          if let seq = r.seqOnly() {
            metadata = MessageMetadata(seq: seq)
            return true
          }
          guard let v = r.value(depth: depth + 1, limit: limit), let md = try? KenshoCodec.metadata(v) else {
            return false
          }
          metadata = md
          return true
        case .error:
          guard let v = r.value(depth: depth + 1, limit: limit),
            let e = try? KenshoCodec.serializedError(v, path: "$.error")
          else {
            return false
          }
          error = e
          return true
        case .messageId:
          messageId = r.text()
          return messageId != nil
        case .sourceWorker:
          source = r.text()
          return source != nil
        case .targetWorker:
          target = r.text()
          return target != nil
        case .streamId:
          streamId = r.text()
          return streamId != nil
        case .traceId:
          traceId = r.text()
          return traceId != nil
        case .correlationId:
          correlationId = r.text()
          return correlationId != nil
        default: return false
        }
      }
      guard read, let type, let payload, let messageId, let source, let target else { return nil }
      let message = KenshoMessage(
        messageId: messageId, sourceWorker: source, targetWorker: target, type: type, payload: payload,
        streamId: streamId, traceId: traceId, correlationId: correlationId, error: error, metadata: metadata)
      return message.validate(mode) == nil ? message : nil
    }
  }
}
