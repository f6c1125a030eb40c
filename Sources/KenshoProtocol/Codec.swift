public import Foundation

/// JSON text ⇄ ``KenshoMessage``, for messages that cross a process boundary.
///
/// Decoding never throws an untyped error: every malformed input becomes a
/// ``MessageRejection`` naming the JSON path, what was expected and what was found (KSP-1.2).
public enum KenshoCodec {
  /// Parses JSON text into a ``JSONValue``.
  public static func parse(_ data: Data) -> Result<JSONValue, MessageRejection> {
    do {
      return .success(try JSONText.parse(data))
    } catch {
      return .failure(MessageRejection(.malformedJSON, path: "$", expected: "one JSON value", found: error.description))
    }
  }

  /// Decodes and validates one message from JSON text.
  public static func decode(_ data: Data, mode: ValidationMode = .received) -> Result<KenshoMessage, MessageRejection> {
    parse(data).flatMap { message(from: $0, mode: mode) }
  }

  /// Decodes and validates one message from a parsed JSON value.
  public static func message(from json: JSONValue, mode: ValidationMode = .received) -> Result<
    KenshoMessage, MessageRejection
  > {
    guard case .object(let o) = json else {
      return .failure(
        MessageRejection(.notAnObject, path: "$", expected: "a KenshoMessage object", found: json.typeName))
    }
    do {
      let typeName = try requiredString(o, "type")
      guard let type = MessageType(rawValue: typeName) else {
        throw MessageRejection(
          .unknownType, path: "$.type",
          expected: "one of " + MessageType.allCases.map(\.rawValue).joined(separator: ", "),
          found: describe(typeName))
      }
      guard let payload = o["payload"] else {
        throw MessageRejection(.missingField, path: "$.payload", expected: "a payload (null allowed)", found: "nothing")
      }
      let message = KenshoMessage(
        messageId: try requiredString(o, "messageId"),
        sourceWorker: try requiredString(o, "sourceWorker"),
        targetWorker: try requiredString(o, "targetWorker"),
        type: type,
        payload: payload,
        streamId: try optionalString(o, "streamId"),
        traceId: try optionalString(o, "traceId"),
        correlationId: try optionalString(o, "correlationId"),
        error: try o["error"].flatMap { try serializedError($0, path: "$.error") },
        metadata: try o["metadata"].flatMap { try metadata($0) }
      )
      if let rejection = message.validate(mode) { throw rejection }
      return .success(message)
    } catch let rejection as MessageRejection {
      return .failure(rejection)
    } catch {
      return .failure(MessageRejection(.malformedJSON, path: "$", expected: "a KenshoMessage", found: "\(error)"))
    }
  }

  /// The message as a JSON object, with absent optional fields left out.
  public static func json(_ m: KenshoMessage) -> JSONValue {
    var o: [String: JSONValue] = [
      "messageId": .string(m.messageId),
      "sourceWorker": .string(m.sourceWorker),
      "targetWorker": .string(m.targetWorker),
      "type": .string(m.type.rawValue),
      "payload": m.payload,
    ]
    if let v = m.streamId { o["streamId"] = .string(v) }
    if let v = m.traceId { o["traceId"] = .string(v) }
    if let v = m.correlationId { o["correlationId"] = .string(v) }
    if let e = m.error { o["error"] = json(e) }
    if let md = m.metadata { o["metadata"] = md.json }
    return .object(o)
  }

  /// Writes `m` after what `out` holds, as `JSONText.serialize(json(m))` writes it, byte for
  /// byte, without making its object: members in the order of their names.
  public static func write(_ m: KenshoMessage, into out: inout [UInt8]) throws(JSONText.ParseError) {
    func member(_ name: StaticString, first: Bool = false) {
      if !first { out.append(UInt8(ascii: ",")) }
      out.append(UInt8(ascii: "\""))
      out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
      out.append(UInt8(ascii: "\""))
      out.append(UInt8(ascii: ":"))
    }
    out.append(UInt8(ascii: "{"))
    var first = true
    if let v = m.correlationId {
      member("correlationId", first: true)
      JSONText.append(string: v, to: &out)
      first = false
    }
    if let e = m.error {
      member("error", first: first)
      try JSONText.append(json(e), to: &out)
      first = false
    }
    member("messageId", first: first)
    JSONText.append(string: m.messageId, to: &out)
    if let md = m.metadata {
      member("metadata")
      if md.other.isEmpty {
        // `credit` and `seq`, in the order of their names, without an object in between.
        out.append(UInt8(ascii: "{"))
        if let credit = md.credit {
          out.append(contentsOf: #""credit":"#.utf8)
          JSONText.writeInteger(Int64(credit), into: &out)
        }
        if let seq = md.seq {
          if md.credit != nil { out.append(UInt8(ascii: ",")) }
          out.append(contentsOf: #""seq":"#.utf8)
          JSONText.writeInteger(Int64(seq), into: &out)
        }
        out.append(UInt8(ascii: "}"))
      } else {
        try JSONText.append(md.json, to: &out)
      }
    }
    member("payload")
    try JSONText.append(m.payload, to: &out)
    member("sourceWorker")
    JSONText.append(string: m.sourceWorker, to: &out)
    if let v = m.streamId {
      member("streamId")
      JSONText.append(string: v, to: &out)
    }
    member("targetWorker")
    JSONText.append(string: m.targetWorker, to: &out)
    if let v = m.traceId {
      member("traceId")
      JSONText.append(string: v, to: &out)
    }
    member("type")
    JSONText.append(string: m.type.rawValue, to: &out)
    out.append(UInt8(ascii: "}"))
  }

  /// A serialized error as a JSON object.
  public static func json(_ e: SerializedError) -> JSONValue {
    var o: [String: JSONValue] = ["name": .string(e.name), "message": .string(e.message)]
    if let code = e.code { o["code"] = .string(code) }
    if let stack = e.stack { o["stack"] = .string(stack) }
    return .object(o)
  }

  /// Encodes a message as one line of JSON (no newline inside, keys sorted).
  public static func encode(_ m: KenshoMessage) throws -> Data {
    try encode(json(m))
  }

  /// Encodes any JSON value as compact JSON text with sorted keys.
  public static func encode(_ value: JSONValue) throws -> Data {
    Data(try JSONText.serialize(value))
  }

  static func requiredString(_ o: [String: JSONValue], _ key: String) throws -> String {
    guard let value = o[key] else {
      throw MessageRejection(.missingField, path: "$.\(key)", expected: "a string", found: "nothing")
    }
    guard case .string(let s) = value else {
      throw MessageRejection(.wrongType, path: "$.\(key)", expected: "a string", found: value.typeName)
    }
    return s
  }

  static func optionalString(_ o: [String: JSONValue], _ key: String) throws -> String? {
    guard let value = o[key] else { return nil }
    guard case .string(let s) = value else {
      throw MessageRejection(.wrongType, path: "$.\(key)", expected: "a string", found: value.typeName)
    }
    return s
  }

  /// Reads a `SerializedError` object.
  public static func serializedError(_ value: JSONValue, path: String) throws(MessageRejection) -> SerializedError {
    guard case .object(let o) = value else {
      throw MessageRejection(
        .wrongType, path: path, expected: "an object {name, message, code?, stack?}", found: value.typeName)
    }
    func field(_ key: String, required: Bool) throws(MessageRejection) -> String? {
      guard let v = o[key] else {
        if required {
          throw MessageRejection(.missingField, path: "\(path).\(key)", expected: "a string", found: "nothing")
        }
        return nil
      }
      guard case .string(let s) = v else {
        throw MessageRejection(.wrongType, path: "\(path).\(key)", expected: "a string", found: v.typeName)
      }
      return s
    }
    return SerializedError(
      name: try field("name", required: true) ?? "",
      message: try field("message", required: true) ?? "",
      code: try field("code", required: false),
      stack: try field("stack", required: false))
  }

  /// Reads a message's `metadata` object (`seq` and `credit` typed, the rest kept).
  public static func metadata(_ value: JSONValue) throws(MessageRejection) -> MessageMetadata {
    guard case .object(var o) = value else {
      throw MessageRejection(.wrongType, path: "$.metadata", expected: "an object", found: value.typeName)
    }
    func counter(_ key: String) throws(MessageRejection) -> Int? {
      guard let v = o.removeValue(forKey: key) else { return nil }
      guard let i = v.intValue, i >= 0, let n = Int(exactly: i) else {
        throw MessageRejection(
          .wrongType, path: "$.metadata.\(key)", expected: "a non-negative integer", found: v.typeName)
      }
      return n
    }
    let seq = try counter("seq")
    let credit = try counter("credit")
    return MessageMetadata(seq: seq, credit: credit, other: o)
  }

  static func summarize(_ error: any Error) -> String {
    if case DecodingError.dataCorrupted(let context) = error {
      return context.debugDescription + (context.underlyingError.map { " (\($0))" } ?? "")
    }
    return "\(error)"
  }
}
