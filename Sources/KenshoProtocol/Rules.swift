/// A rule of KSP/1 (../shared/PROTOCOL.md): its id, its level and its text, declared once and
/// used by tests, scenario checks, reports and docs.
public struct KSPRule: Sendable, Hashable, Identifiable, Codable {
  public enum Level: String, Sendable, Hashable, Codable {
    /// Decides pass/fail.
    case must = "MUST"
    /// Gives a non-strict grade when broken, never a failure.
    case should = "SHOULD"
  }

  /// The rule id, e.g. `KSP-3.2`.
  public let id: String
  public let level: Level
  public let text: String

  public init(_ id: String, _ level: Level, _ text: String) {
    self.id = id
    self.level = level
    self.text = text
  }

  /// The rule with this id, or `nil` for an unknown id.
  public static func named(_ id: String) -> KSPRule? { byId[id] }

  private static let byId: [String: KSPRule] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })

  /// Every rule of KSP/1, in document order.
  public static let all: [KSPRule] = [
    KSPRule(
      "KSP-1.1", .must,
      "A message sent by an implementation has every envelope field with the type given, and streamId on every stream_* message."
    ),
    KSPRule(
      "KSP-1.2", .must,
      "A received message that breaks KSP-1.1 is dropped and counted; it never crashes the bus, never reaches a callback, and never disturbs other streams."
    ),
    KSPRule("KSP-1.3", .must, "A bus ignores a message whose targetWorker is neither its own name nor \"*\"."),
    KSPRule("KSP-1.4", .should, "All messages of one stream carry the traceId of its stream_request, when it had one."),
    KSPRule(
      "KSP-2.1", .must,
      "callAgentStream creates a fresh, unique streamId, records the stream in activeStreams before sending, and sends one stream_request whose payload is {method, args}."
    ),
    KSPRule(
      "KSP-2.2", .must,
      "The producer's bus calls the handler registered for method exactly once per stream_request, with args and an emitter bound to that stream and consumer."
    ),
    KSPRule(
      "KSP-2.3", .must,
      "A stream_request for an unregistered method is answered with one stream_error with code METHOD_NOT_FOUND (not a response)."
    ),
    KSPRule("KSP-2.4", .must, "A second stream_request with the same messageId does not run the handler again."),
    KSPRule(
      "KSP-2.5", .must,
      "A handler that throws fails its stream: one stream_error with the thrown error's name and message, code STREAM_ERROR unless the error carries its own."
    ),
    KSPRule(
      "KSP-3.1", .must,
      "stream.chunk(data) sends one stream_chunk addressed to the consumer, with the stream's streamId and data as payload."
    ),
    KSPRule(
      "KSP-3.2", .must,
      "Over a transport that keeps order, onChunk sees every chunk exactly once, in emission order, with the payload unchanged (I-JSON equal)."
    ),
    KSPRule(
      "KSP-3.3", .must,
      "Each chunk received from the stream's producer, and a stream_end or stream_error held back for missing chunks, refreshes the stream's last-activity time; messages dropped under KSP-1.2, 1.3 or 3.5, or sent by anyone else, never do."
    ),
    KSPRule(
      "KSP-3.4", .should,
      "The producer numbers chunks in metadata.seq; a consumer that sees seq delivers in seq order and drops duplicates even when the transport reorders or repeats; it may hold back at most a bound of no fewer than 1024 chunks per stream, dropping and counting the rest."
    ),
    KSPRule(
      "KSP-3.5", .must,
      "A chunk for a streamId that is not active at the consumer is dropped and counted; no callback runs."),
    KSPRule(
      "KSP-4.1", .must, "stream.end(summary) sends one stream_end; the consumer calls onEnd(summary) exactly once."),
    KSPRule(
      "KSP-4.2", .must,
      "After onEnd, onError or a timeout, no callback of that stream runs again and its activeStreams entry is gone, even when the callback throws."
    ),
    KSPRule(
      "KSP-4.3", .must,
      "After end or error, the producer's emitter sends nothing more for that stream; further calls are rejected locally."
    ),
    KSPRule(
      "KSP-4.4", .should,
      "With seq in use, stream_end carries the chunk count in metadata.seq and onEnd is delivered only after every earlier chunk."
    ),
    KSPRule(
      "KSP-5.1", .must,
      "stream.error(e) sends one stream_error whose error has name, message and code (STREAM_ERROR when e has none)."
    ),
    KSPRule("KSP-5.2", .must, "onError receives the name, message and code the producer sent, exactly once."),
    KSPRule(
      "KSP-5.3", .must,
      "A stream_error without an error field still terminates the stream, with code STREAM_ERROR and message 'Unknown stream error'."
    ),
    KSPRule(
      "KSP-5.4", .should,
      "A callback that throws is contained: it does not break the bus, other streams, or later deliveries."
    ),
    KSPRule(
      "KSP-6.1", .must,
      "The idle timeout is 300000 ms by default or callbacks.timeout; the consumer sweeps activeStreams every 60000 ms by default."
    ),
    KSPRule(
      "KSP-6.2", .must,
      "A stream idle longer than its timeout is terminated at a sweep with STREAM_TIMEOUT and removed: never before its timeout, at the latest one sweep interval after."
    ),
    KSPRule("KSP-6.3", .must, "Both durations can be configured, and the bus reads time from a replaceable clock."),
    KSPRule(
      "KSP-7.1", .must,
      "cancelStream removes the entry, calls onError with STREAM_CANCELLED once, and sends one stream_cancel to the producer."
    ),
    KSPRule(
      "KSP-7.2", .must,
      "On stream_cancel the producer's emitter becomes inactive: later chunk/end send nothing, and the handler can observe the cancellation."
    ),
    KSPRule("KSP-7.3", .must, "A stream_cancel whose sourceWorker is not the stream's consumer is ignored."),
    KSPRule(
      "KSP-8.1", .should,
      "When the transport reports a producer gone, its open streams terminate at once with PRODUCER_GONE; without a report, KSP-6 reclaims them."
    ),
    KSPRule(
      "KSP-8.2", .must,
      "A producer that crashes mid-stream leaves no activeStreams entry once KSP-6 or KSP-8.1 has run."
    ),
    KSPRule(
      "KSP-9.1", .must,
      "When every stream is terminal, activeStreams is empty on every bus (consumer entries and producer emitters)."
    ),
    KSPRule(
      "KSP-9.2", .must,
      "Memory retained after N completed streams returns to what it was before them; no per-stream residue grows with N."
    ),
    KSPRule(
      "KSP-9.3", .should,
      "Relaying a stream does not buffer it: memory held is bounded by a few chunks, not by the total size."
    ),
    KSPRule(
      "KSP-10.1", .must,
      "Disposing a bus terminates each open stream once with BUS_DISPOSED, stops its sweep timer, and releases its transport."
    ),
    KSPRule(
      "KSP-11.1", .must,
      "A relay forwards every frame to every other open connection, unchanged and of the same kind, never back to its sender."
    ),
    KSPRule("KSP-11.2", .must, "Frames from one sender reach each receiver in the order they were sent."),
    KSPRule("KSP-11.3", .must, "A text frame ping is answered with pong to that client only, and is not forwarded."),
    KSPRule(
      "KSP-11.4", .should,
      "On connect the relay sends one server_info text frame describing itself; a bus ignores it (KSP-1.2)."),
    KSPRule(
      "KSP-11.5", .must,
      "A relay that requires a token refuses an upgrade without a valid one (HTTP 401) and never forwards a frame from a client it has not admitted."
    ),
    KSPRule(
      "KSP-11.6", .should,
      "A slow or stalled receiver does not delay delivery to the others; what cannot be delivered to it is dropped and counted (or the connection closed), never buffered without bound."
    ),
  ]
}
