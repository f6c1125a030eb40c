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
  /// Flow control: chunks the consumer still allows; -1 when the stream has no flow control.
  private let credit: Atomic<Int>
  private static let closedBit = 1
  private static let cancelledBit = 2
  private static let flags = 3

  init(bus: MessageBus, streamId: String, consumer: String, traceId: String?, credit: Int? = nil) {
    self.bus = bus
    self.credit = Atomic(credit ?? -1)
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
    if credit.load(ordering: .relaxed) >= 0 { try takeCredit() }
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
  public var isFlowControlled: Bool { credit.load(ordering: .relaxed) >= 0 }

  /// Chunks the consumer allows now (flow control); `nil` without flow control.
  public var availableCredit: Int? {
    let c = credit.load(ordering: .relaxed)
    return c >= 0 ? c : nil
  }

  /// Runs `handler` once, when credit is next available (at once if it is now). Use it to
  /// resume after ``EmitterError/noCredit``.
  public func onCredit(_ handler: @escaping @Sendable () -> Void) {
    bus.setCreditHandler(self, handler)
  }

  /// Adds credit granted by the consumer; returns whether the emitter had none before.
  func grant(_ n: Int) -> Bool {
    guard credit.load(ordering: .relaxed) >= 0 else { return false }
    return credit.wrappingAdd(n, ordering: .acquiringAndReleasing).oldValue == 0
  }

  private func takeCredit() throws(EmitterError) {
    var c = credit.load(ordering: .relaxed)
    while true {
      if word.load(ordering: .relaxed) & Self.flags != 0 { throw Self.refusal(word.load(ordering: .relaxed)) }
      if c == 0 { throw .noCredit }
      let (done, seen) = credit.compareExchange(expected: c, desired: c - 1, ordering: .acquiringAndReleasing)
      if done { return }
      c = seen
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
