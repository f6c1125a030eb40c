/// Why a message was rejected (KSP-1.2): what was wrong, where, what was expected and found.
public struct MessageRejection: Error, Sendable, Hashable, CustomStringConvertible {
  public enum Reason: String, Sendable, Hashable, CaseIterable, Codable {
    case malformedJSON = "malformed_json"
    case notAnObject = "not_an_object"
    case missingField = "missing_field"
    case wrongType = "wrong_type"
    case unknownType = "unknown_type"
    case invalidWorkerName = "invalid_worker_name"
    case invalidId = "invalid_id"
    case missingStreamId = "missing_stream_id"
    case missingError = "missing_error"
    case missingCorrelationId = "missing_correlation_id"
  }

  public var reason: Reason
  /// JSON path of the offending value, e.g. `$.sourceWorker`.
  public var path: String
  public var expected: String
  public var found: String

  public init(_ reason: Reason, path: String, expected: String, found: String) {
    self.reason = reason
    self.path = path
    self.expected = expected
    self.found = found
  }

  public var description: String {
    "\(reason.rawValue) at \(path): expected \(expected), found \(found)"
  }
}

/// Limits and shapes from PROTOCOL.md §1.
public enum Envelope {
  /// Longest `messageId`, `streamId` or `correlationId`, in characters.
  public static let maxIdLength = 256
  /// Longest worker name (`^[A-Za-z][A-Za-z0-9_-]{0,63}$`).
  public static let maxWorkerNameLength = 64

  /// Whether `name` matches `^[A-Za-z][A-Za-z0-9_-]{0,63}$`.
  public static func isValidWorkerName(_ name: String) -> Bool {
    if let valid = name.utf8.withContiguousStorageIfAvailable(isValidWorkerName) { return valid }
    return Array(name.utf8).withUnsafeBufferPointer(isValidWorkerName)
  }

  private static func isValidWorkerName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let first = bytes.first, bytes.count <= maxWorkerNameLength else { return false }
    guard isLetter(first) else { return false }
    for byte in bytes.dropFirst() where !(isLetter(byte) || isDigit(byte) || byte == 0x5F || byte == 0x2D) {
      return false
    }
    return true
  }

  @inline(__always) private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }
  @inline(__always) private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

  /// Whether `id` has 1 to ``maxIdLength`` characters.
  public static func isValidId(_ id: String) -> Bool {
    // UTF-8 length bounds the character count from above; count characters only when needed.
    let bytes = id.utf8.count
    if bytes == 0 { return false }
    if bytes <= maxIdLength { return true }
    return id.count <= maxIdLength
  }
}

/// How strictly to validate.
public enum ValidationMode: Sendable {
  /// What a bus accepts on receipt: KSP-1.2, lenient where another rule says so (a
  /// `stream_error` without `error` still terminates its stream, KSP-5.3).
  case received
  /// What an implementation must send: every field of KSP-1.1.
  case sent
}

/// Fields a receiver has already checked, which validation may skip (the hot path of a bus
/// that has matched a chunk to a stream it opened, with a producer name it validated then).
public struct TrustedFields: OptionSet, Sendable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }
  public static let sourceWorker = TrustedFields(rawValue: 1)
  public static let targetWorker = TrustedFields(rawValue: 2)
  public static let streamId = TrustedFields(rawValue: 4)
}

extension KenshoMessage {
  /// The first problem with this message under KSP-1.1, or `nil` when it is well-formed.
  /// Fields in `trusted` are taken as valid.
  public func validate(_ mode: ValidationMode = .received, trusting trusted: TrustedFields = []) -> MessageRejection? {
    if !Envelope.isValidId(messageId) {
      return MessageRejection(
        .invalidId, path: "$.messageId", expected: "a string of 1..256 characters", found: describe(messageId))
    }
    if !trusted.contains(.sourceWorker) && !Envelope.isValidWorkerName(sourceWorker) {
      return MessageRejection(
        .invalidWorkerName, path: "$.sourceWorker", expected: "a worker name ^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        found: describe(sourceWorker))
    }
    if !trusted.contains(.targetWorker) && targetWorker != KenshoMessage.broadcastTarget
      && !Envelope.isValidWorkerName(targetWorker)
    {
      return MessageRejection(
        .invalidWorkerName, path: "$.targetWorker", expected: "a worker name or \"*\"", found: describe(targetWorker))
    }
    if type.isStream {
      guard let streamId else {
        return MessageRejection(
          .missingStreamId, path: "$.streamId", expected: "a streamId on \(type.rawValue)", found: "nothing")
      }
      if !Envelope.isValidId(streamId) {
        return MessageRejection(
          .invalidId, path: "$.streamId", expected: "a string of 1..256 characters", found: describe(streamId))
      }
    } else if let streamId, !Envelope.isValidId(streamId) {
      return MessageRejection(
        .invalidId, path: "$.streamId", expected: "a string of 1..256 characters", found: describe(streamId))
    }
    if let correlationId, !Envelope.isValidId(correlationId) {
      return MessageRejection(
        .invalidId, path: "$.correlationId", expected: "a string of 1..256 characters", found: describe(correlationId))
    }
    if type == .response && correlationId == nil {
      return MessageRejection(
        .missingCorrelationId, path: "$.correlationId", expected: "the request's messageId on a response",
        found: "nothing")
    }
    if mode == .sent && type == .streamError && error == nil {
      return MessageRejection(
        .missingError, path: "$.error", expected: "a SerializedError on stream_error", found: "nothing")
    }
    if let seq, seq < 0 {
      return MessageRejection(
        .wrongType, path: "$.metadata.seq", expected: "a non-negative integer", found: String(seq))
    }
    return nil
  }
}

/// A short, printable rendering of a found value for rejection messages.
func describe(_ s: String) -> String {
  let shown = s.count > 40 ? String(s.prefix(40)) + "… (\(s.count) characters)" : s
  return "\"\(shown)\""
}
