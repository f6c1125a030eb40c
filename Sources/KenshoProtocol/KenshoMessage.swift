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
///
/// The fields every message uses are stored inline; the rarer ones (`traceId`,
/// `correlationId`, `error`, metadata other than `seq`) live in one shared immutable box, so a
/// chunk stays small to copy and a stream's messages can share one box for their `traceId`.
public struct KenshoMessage: Sendable, Hashable {
  public var messageId: String
  public var sourceWorker: String
  public var targetWorker: String
  public var type: MessageType
  public var payload: JSONValue
  public var streamId: String?
  /// `metadata.seq` (KSP-3.4, 4.4).
  public var seq: Int?
  @usableFromInline var rare: Rare?

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
    self.seq = metadata?.seq
    self.rare = Rare.make(
      Rare.Fields(
        traceId: traceId, correlationId: correlationId, error: error, credit: metadata?.credit,
        other: metadata?.other ?? [:], hasMetadata: metadata.map { $0.seq == nil } ?? false))
  }

  /// A message whose rare fields are those of `shared` (typically a stream's `traceId`).
  @inlinable
  public init(
    messageId: String, sourceWorker: String, targetWorker: String, type: MessageType, payload: JSONValue,
    streamId: String?, seq: Int?, sharing shared: SharedFields?
  ) {
    self.messageId = messageId
    self.sourceWorker = sourceWorker
    self.targetWorker = targetWorker
    self.type = type
    self.payload = payload
    self.streamId = streamId
    self.seq = seq
    self.rare = shared?.rare
  }

  public var traceId: String? {
    get { rare?.traceId }
    set { update { $0.traceId = newValue } }
  }

  public var correlationId: String? {
    get { rare?.correlationId }
    set { update { $0.correlationId = newValue } }
  }

  public var error: SerializedError? {
    get { rare?.error }
    set { update { $0.error = newValue } }
  }

  /// `metadata`, or `nil` when the message has none.
  public var metadata: MessageMetadata? {
    get {
      guard seq != nil || rare?.hasMetadata == true || rare?.credit != nil || rare?.other.isEmpty == false else {
        return nil
      }
      return MessageMetadata(seq: seq, credit: rare?.credit, other: rare?.other ?? [:])
    }
    set {
      seq = newValue?.seq
      update {
        $0.credit = newValue?.credit
        $0.other = newValue?.other ?? [:]
        $0.hasMetadata = newValue.map { $0.seq == nil } ?? false
      }
    }
  }

  /// The rare fields of this message, to share with other messages.
  public var sharedFields: SharedFields? { rare.map(SharedFields.init) }

  private mutating func update(_ change: (inout Rare.Fields) -> Void) {
    var fields = rare?.fields ?? Rare.Fields()
    change(&fields)
    rare = Rare.make(fields)
  }

  public static func == (a: KenshoMessage, b: KenshoMessage) -> Bool {
    a.messageId == b.messageId && a.sourceWorker == b.sourceWorker && a.targetWorker == b.targetWorker
      && a.type == b.type && a.payload == b.payload && a.streamId == b.streamId && a.seq == b.seq
      && (a.rare === b.rare || a.rare?.fields == b.rare?.fields)
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(messageId)
    hasher.combine(sourceWorker)
    hasher.combine(targetWorker)
    hasher.combine(type)
    hasher.combine(streamId)
    hasher.combine(seq)
  }
}

/// Fields of a message that many messages can share (a stream's `traceId`).
public struct SharedFields: Sendable {
  @usableFromInline let rare: Rare

  @usableFromInline init(_ rare: Rare) { self.rare = rare }

  public var traceId: String? { rare.traceId }

  /// Fields carrying `traceId`, or `nil` when there is none.
  public init?(traceId: String?) {
    guard let traceId else { return nil }
    var fields = Rare.Fields()
    fields.traceId = traceId
    rare = Rare(fields)
  }
}

/// The immutable box of a message's rarely used fields.
@usableFromInline
final class Rare: Sendable {
  struct Fields: Hashable {
    var traceId: String?
    var correlationId: String?
    var error: SerializedError?
    var credit: Int?
    var other: [String: JSONValue] = [:]
    /// `metadata` was present with no member but `seq` (which is stored inline), so that a
    /// message with `"metadata": {}` keeps it.
    var hasMetadata = false

    var isEmpty: Bool {
      traceId == nil && correlationId == nil && error == nil && credit == nil && other.isEmpty && !hasMetadata
    }
  }

  let fields: Fields
  var traceId: String? { fields.traceId }
  var correlationId: String? { fields.correlationId }
  var error: SerializedError? { fields.error }
  var credit: Int? { fields.credit }
  var other: [String: JSONValue] { fields.other }
  var hasMetadata: Bool { fields.hasMetadata }

  init(_ fields: Fields) { self.fields = fields }

  static func make(_ fields: Fields) -> Rare? { fields.isEmpty ? nil : Rare(fields) }

}
