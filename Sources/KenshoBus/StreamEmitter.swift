public import KenshoProtocol
import Synchronization

/// The producer's side of one stream: the `stream` a handler receives (KSP-2.2).
///
/// `chunk`, `end` and `error` send to the stream's consumer (KSP-3.1, 4.1, 5.1). After `end`
/// or `error` every call throws ``EmitterError/closed``; after the consumer cancelled, the
/// consumer went away or the bus was disposed, every call throws ``EmitterError/cancelled``
/// and nothing is sent (KSP-4.3, 7.2). An emitter may be used from any thread.
public final class StreamEmitter: Sendable {
  /// The stream's id, from its `stream_request`.
  public let streamId: String
  /// The consumer: the `sourceWorker` of the `stream_request`.
  public let consumer: String
  /// The stream's `traceId`, boxed once and shared by all its messages (KSP-1.4).
  let shared: SharedFields?
  let bus: MessageBus
  var traceId: String? { shared?.traceId }

  // seq << 2 | cancelled << 1 | closed: one atomic word, so that a chunk costs one add.
  private let word = Atomic<Int>(0)
  /// Flow control: the consumer's cumulative grant, "chunks with a seq below this may be sent"
  /// (starts at the window offered); -1 when the stream has no flow control.
  private let limit: Atomic<Int>
  private static let closedBit = 1
  private static let cancelledBit = 2
  private static let flags = 3

  init(bus: MessageBus, streamId: String, consumer: String, traceId: String?, credit: Int? = nil) {
    self.bus = bus
    self.limit = Atomic(credit.map { max(0, $0) } ?? -1)
    self.streamId = streamId
    self.consumer = consumer
    self.shared = SharedFields(traceId: traceId)
  }

  /// Whether the emitter still sends.
  public var isActive: Bool { word.load(ordering: .relaxed) & Self.flags == 0 }

  /// Whether the consumer cancelled the stream (or went away, or the bus was disposed).
  public var isCancelled: Bool { word.load(ordering: .relaxed) & Self.cancelledBit != 0 }

  /// Number of chunks sent so far.
  public var chunksSent: Int { word.load(ordering: .relaxed) >> 2 }

  /// Sends one chunk (KSP-3.1), numbered in `metadata.seq` (KSP-3.4).
  public func chunk(_ data: JSONValue) throws(EmitterError) {
    if limit.load(ordering: .relaxed) >= 0 {
      let seq = try takeCredit()
      bus.sendChunk(self, seq: seq, data: data)
      return
    }
    let old = word.wrappingAdd(4, ordering: .relaxed).oldValue
    if old & Self.flags != 0 { throw Self.refusal(old) }
    bus.sendChunk(self, seq: old >> 2, data: data)
  }

  /// Ends the stream with a summary (KSP-4.1); `stream_end` carries the chunk count (KSP-4.4).
  public func end(_ summary: JSONValue = .null) throws(EmitterError) {
    let count = try close()
    bus.finish(self, type: .streamEnd, payload: summary, error: nil, count: count)
  }

  /// Fails the stream (KSP-5.1); the code is `STREAM_ERROR` when the error has none.
  public func error(_ error: SerializedError) throws(EmitterError) {
    let count = try close()
    var sent = error
    if sent.code == nil { sent.code = ErrorCode.streamError }
    bus.finish(self, type: .streamError, payload: .null, error: sent, count: count)
  }

  /// Runs `handler` when the consumer cancels the stream, with the cancel's reason. Runs at
  /// once if the stream is already cancelled.
  public func onCancel(_ handler: @escaping @Sendable (JSONValue) -> Void) {
    bus.setCancelHandler(self, handler)
  }

  /// Whether the stream runs under flow control (the consumer offered credit).
  public var isFlowControlled: Bool { limit.load(ordering: .relaxed) >= 0 }

  /// Chunks the consumer allows now (flow control); `nil` without flow control.
  public var availableCredit: Int? {
    let l = limit.load(ordering: .acquiring)
    return l >= 0 ? max(0, l - chunksSent) : nil
  }

  /// Runs `handler` once: when credit is next available (at once if it is now), or when the
  /// emitter stops sending (the consumer cancelled or went away, the stream finished, the bus
  /// was disposed), so that a producer waiting for credit always resumes, and then finds its
  /// next call refused. Use it to resume after ``EmitterError/noCredit``.
  public func onCredit(_ handler: @escaping @Sendable () -> Void) {
    bus.setCreditHandler(self, handler)
  }

  /// Applies the consumer's cumulative grant "chunks with a seq below `newLimit` may be sent"
  /// (KSP-FC). Idempotent: a grant at or below the current limit (a duplicate, or one that
  /// arrives after a later one) changes nothing. Returns whether the limit rose.
  func grant(upTo newLimit: Int) -> Bool {
    var current = limit.load(ordering: .relaxed)
    while true {
      guard current >= 0, newLimit > current else { return false }
      let (done, seen) = limit.compareExchange(
        expected: current, desired: newLimit, ordering: .acquiringAndReleasing)
      if done { return true }
      current = seen
    }
  }

  /// Claims the next seq if the consumer's grant allows it.
  private func takeCredit() throws(EmitterError) -> Int {
    var old = word.load(ordering: .relaxed)
    while true {
      if old & Self.flags != 0 { throw Self.refusal(old) }
      if old >> 2 >= limit.load(ordering: .acquiring) { throw .noCredit }
      let (done, seen) = word.compareExchange(expected: old, desired: old + 4, ordering: .acquiringAndReleasing)
      if done { return old >> 2 }
      old = seen
    }
  }

  /// Marks the emitter closed and returns the chunk count, or throws if it was inactive.
  private func close() throws(EmitterError) -> Int {
    var old = word.load(ordering: .relaxed)
    while true {
      if old & Self.flags != 0 { throw Self.refusal(old) }
      let (exchanged, original) = word.compareExchange(
        expected: old, desired: old | Self.closedBit, ordering: .acquiringAndReleasing)
      if exchanged { return old >> 2 }
      old = original
    }
  }

  /// Deactivates the emitter because the stream was cancelled; returns whether it was active.
  func markCancelled() -> Bool {
    word.bitwiseOr(Self.cancelledBit, ordering: .acquiringAndReleasing).oldValue & Self.flags == 0
  }

  private static func refusal(_ word: Int) -> EmitterError {
    word & cancelledBit != 0 ? .cancelled : .closed
  }
}
