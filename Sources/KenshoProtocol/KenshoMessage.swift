/// The `type` of a ``KenshoMessage`` (PROTOCOL.md §1).
public enum MessageType: String, Sendable, CaseIterable, Codable {
  case request
  case response
  case broadcast
  case streamRequest = "stream_request"
  case streamChunk = "stream_chunk"
  case streamEnd = "stream_end"
  case streamError = "stream_error"
  case streamCancel = "stream_cancel"

  /// Whether this is one of the `stream_*` types, which must carry a `streamId` (KSP-1.1).
  @inlinable public var isStream: Bool {
    switch self {
    case .streamRequest, .streamChunk, .streamEnd, .streamError, .streamCancel: true
    case .request, .response, .broadcast: false
    }
  }
}

/// An error as it travels on the wire: `{ name, message, code?, stack? }`.
public struct SerializedError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
  public var name: String
  public var message: String
  public var code: String?
  public var stack: String?

  public init(name: String = "Error", message: String, code: String? = nil, stack: String? = nil) {
    self.name = name
    self.message = message
    self.code = code
    self.stack = stack
  }

  public var description: String {
    "\(name)[\(code ?? "-")]: \(message)"
  }
}

/// Error codes defined by KSP/1. Producers may set codes of their own.
public enum ErrorCode {
  public static let methodNotFound = "METHOD_NOT_FOUND"
  public static let streamError = "STREAM_ERROR"
  public static let streamTimeout = "STREAM_TIMEOUT"
  public static let streamCancelled = "STREAM_CANCELLED"
  public static let producerGone = "PRODUCER_GONE"
  public static let busDisposed = "BUS_DISPOSED"
}

/// `metadata` of a message. `seq` (KSP-3.4, 4.4) and `credit` (the flow-control extension) are
/// typed so that the per-chunk path allocates nothing; other members are kept as they came.
public struct MessageMetadata: Sendable, Hashable {
  public var seq: Int?
  public var credit: Int?
  public var other: [String: JSONValue]

  public init(seq: Int? = nil, credit: Int? = nil, other: [String: JSONValue] = [:]) {
    self.seq = seq
    self.credit = credit
    self.other = other
  }

  /// The metadata as a JSON object.
  public var json: JSONValue {
    var object = other
    if let seq { object["seq"] = .int(Int64(seq)) }
    if let credit { object["credit"] = .int(Int64(credit)) }
    return .object(object)
  }
}

/// One message of the Kensho bus, the `KenshoMessage` envelope of PROTOCOL.md §1.
public struct KenshoMessage: Sendable, Hashable {
  public var messageId: String
  public var sourceWorker: String
  public var targetWorker: String
  public var type: MessageType
  public var payload: JSONValue
  public var streamId: String?
  public var traceId: String?
  public var correlationId: String?
  public var error: SerializedError?
  public var metadata: MessageMetadata?

  /// The broadcast address.
  public static let broadcastTarget = "*"

  public init(
    messageId: String,
    sourceWorker: String,
    targetWorker: String,
    type: MessageType,
    payload: JSONValue = .null,
    streamId: String? = nil,
    traceId: String? = nil,
    correlationId: String? = nil,
    error: SerializedError? = nil,
    metadata: MessageMetadata? = nil
  ) {
    self.messageId = messageId
    self.sourceWorker = sourceWorker
    self.targetWorker = targetWorker
    self.type = type
    self.payload = payload
    self.streamId = streamId
    self.traceId = traceId
    self.correlationId = correlationId
    self.error = error
    self.metadata = metadata
  }

  /// `metadata.seq`, when present.
  @inlinable public var seq: Int? { metadata?.seq }
}
