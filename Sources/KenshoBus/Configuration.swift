public import KenshoProtocol

/// Settings of a ``MessageBus``. The defaults are KSP/1's.
public struct BusConfiguration: Sendable, Hashable {
  /// Idle timeout of a stream without its own (KSP-6.1: 300 000 ms).
  public var streamTimeout: Duration = .milliseconds(300_000)
  /// Interval between sweeps of `activeStreams` (KSP-6.1: 60 000 ms).
  public var sweepInterval: Duration = .milliseconds(60_000)
  /// Whether the producer numbers chunks in `metadata.seq` (KSP-3.4, 4.4).
  public var numberChunks = true
  /// Out-of-order chunks buffered per stream at most while waiting for a gap to fill; beyond
  /// it, chunks are dropped and counted (``DropReason/reorderOverflow``). KSP-3.4 allows no
  /// bound below 1024 (``MessageBus/minimumReorderWindow``): a smaller value counts as 1024.
  public var reorderWindow = 1024
  /// `stream_request` ids remembered after their stream ended, to ignore late duplicates
  /// (KSP-2.4). Memory for this is fixed, not per stream.
  public var duplicateWindow = 1024
  /// Flow control (the KSP-FC extension, docs/FLOW-CONTROL.md), consumer side: offer this
  /// many chunks of credit on every stream opened, and grant more as chunks are taken, with
  /// cumulative grants ("chunks with a seq below N may be sent"). `nil`: off.
  public var flowControlWindow: Int?
  /// Flow control, producer side: honour a consumer's credit offer. A producer that does not
  /// (or a bus without the extension) ignores the offer, and the stream runs without credit.
  public var honoursFlowControl = true

  public init() {}

  public init(
    streamTimeout: Duration = .milliseconds(300_000), sweepInterval: Duration = .milliseconds(60_000),
    numberChunks: Bool = true
  ) {
    self.streamTimeout = streamTimeout
    self.sweepInterval = sweepInterval
    self.numberChunks = numberChunks
  }
}

/// Why a bus dropped a received message. Each is counted in ``BusStats/dropped``.
public enum DropReason: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
  /// Broke KSP-1.1 (KSP-1.2).
  case invalid
  /// Addressed to another worker (KSP-1.3).
  case notAddressed
  /// A chunk, end or error for a stream that is not active here (KSP-3.5).
  case unknownStream
  /// A stream message from a worker that is not the stream's producer.
  case wrongSource
  /// A repeated chunk (`seq` already delivered) or `stream_request` (KSP-2.4, 3.4).
  case duplicate
  /// An out-of-order chunk beyond the reorder window.
  case reorderOverflow
  /// A `stream_cancel` from a worker that is not the stream's consumer, or for no stream (KSP-7.3).
  case foreignCancel
  /// A `response` that answers no pending call.
  case unknownCorrelation
  /// Arrived after the bus was disposed.
  case disposed

  public var description: String {
    switch self {
    case .invalid: "invalid"
    case .notAddressed: "not_addressed"
    case .unknownStream: "unknown_stream"
    case .wrongSource: "wrong_source"
    case .duplicate: "duplicate"
    case .reorderOverflow: "reorder_overflow"
    case .foreignCancel: "foreign_cancel"
    case .unknownCorrelation: "unknown_correlation"
    case .disposed: "disposed"
    }
  }
}

/// A snapshot of a bus's state, for the harness and for tests.
public struct BusStats: Sendable, Hashable {
  /// Entries in `activeStreams`: streams this bus consumes.
  public var activeStreams: Int
  /// Producer emitters still active: streams this bus produces.
  public var emitters: Int
  /// Request/response calls awaiting their response.
  public var pendingCalls: Int
  /// Messages dropped, by reason.
  public var dropped: [DropReason: Int]
  /// Callbacks and handlers that threw and were contained (KSP-5.4).
  public var callbackFailures: Int
  /// Messages received and sent.
  public var received: Int
  public var sent: Int

  /// All drops, whatever the reason.
  public var totalDropped: Int { dropped.values.reduce(0, +) }

  public init(
    activeStreams: Int, emitters: Int, pendingCalls: Int = 0, dropped: [DropReason: Int] = [:],
    callbackFailures: Int = 0, received: Int = 0, sent: Int = 0
  ) {
    self.activeStreams = activeStreams
    self.emitters = emitters
    self.pendingCalls = pendingCalls
    self.dropped = dropped
    self.callbackFailures = callbackFailures
    self.received = received
    self.sent = sent
  }
}

/// The consumer's callbacks of one stream (the seed's `{ onChunk, onEnd, onError, timeout }`).
///
/// Callbacks of one bus never run concurrently, and run in the order their messages arrived.
/// A callback that throws is contained and counted (KSP-5.4).
public struct StreamCallbacks: Sendable {
  public var onChunk: @Sendable (JSONValue) throws -> Void
  public var onEnd: @Sendable (JSONValue) throws -> Void
  public var onError: @Sendable (SerializedError) throws -> Void
  /// This stream's idle timeout, instead of the bus's (KSP-6.1).
  public var timeout: Duration?
  /// This stream's flow-control window, instead of the bus's `flowControlWindow`.
  public var creditWindow: Int?

  public init(
    onChunk: @escaping @Sendable (JSONValue) throws -> Void,
    onEnd: @escaping @Sendable (JSONValue) throws -> Void = { _ in },
    onError: @escaping @Sendable (SerializedError) throws -> Void = { _ in },
    timeout: Duration? = nil
  ) {
    self.onChunk = onChunk
    self.onEnd = onEnd
    self.onError = onError
    self.timeout = timeout
  }
}

/// Errors the bus raises locally, to its own caller.
public enum BusError: Error, Sendable, Hashable {
  /// The bus was disposed (KSP-10.1).
  case disposed
  /// The worker name or target breaks KSP-1's naming rule.
  case invalidWorkerName(String)
}

/// Why a producer's emitter refused a call (KSP-4.3, 7.2).
public enum EmitterError: Error, Sendable, Hashable {
  /// `end` or `error` was already called.
  case closed
  /// The consumer cancelled the stream, went away, or the bus was disposed.
  case cancelled
  /// Flow control: the consumer has granted no credit for another chunk yet; wait for
  /// ``StreamEmitter/onCredit(_:)``.
  case noCredit
}
