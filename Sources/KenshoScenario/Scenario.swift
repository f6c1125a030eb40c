public import KenshoProtocol

/// A declarative scenario (`"format": "kensho-scenario/1"`): agents, what their stream methods
/// do, the workload that calls them, and what must hold afterwards.
public struct Scenario: Sendable, Hashable {
  /// The only format this version reads.
  public static let format = "kensho-scenario/1"

  public var name: String
  public var description: String
  /// Every random choice derives from it; `--seed` overrides it.
  public var seed: UInt64
  public var time: TimeSettings
  public var agents: [AgentSpec]
  public var workload: [WorkloadGroup]
  public var expect: [Expectation]
  /// How much worse than a baseline each metric may get before `--baseline` calls it a
  /// regression, as a fraction (0.25: 25 % worse). Metrics not named use the command line's.
  public var regressionLimits: [Metric: Double] = [:]
  /// Faults the harness network injects, in order; seeded by ``seed``.
  public var faults: [Fault] = []
  /// Things the harness does at set times: dispose an agent's buses (KSP-10.1).
  public var actions: [Action] = []
  /// Which network carries the messages: the harness's own, or a WebSocket relay (§11).
  public var network = NetworkSettings()
  /// The file the scenario came from, when it came from one.
  public var file: String?

  public init(
    name: String, description: String = "", seed: UInt64 = 1, time: TimeSettings = TimeSettings(),
    agents: [AgentSpec], workload: [WorkloadGroup], expect: [Expectation], file: String? = nil
  ) {
    self.name = name
    self.description = description
    self.seed = seed
    self.time = time
    self.agents = agents
    self.workload = workload
    self.expect = expect
    self.file = file
  }

  /// The concrete worker names of an agent or group name: `name` itself, or `name-0` ...
  /// `name-(count-1)` for an agent declared with a count.
  public func workers(_ agentOrGroup: String) -> [String] {
    guard let agent = agents.first(where: { $0.name == agentOrGroup }) else { return [] }
    return agent.workerNames
  }

  /// The behaviour of `method` on the agent that owns worker `worker`.
  public func behaviour(of method: String, on worker: String) -> ProducerBehaviour? {
    agents.first { $0.workerNames.contains(worker) }?.methods[method]
  }

  /// Every rule id the scenario's checks cite.
  public var rules: [String] {
    var seen: [String] = []
    for e in expect where !seen.contains(e.rule) { seen.append(e.rule) }
    return seen
  }
}

/// Which network a scenario's messages cross.
public struct NetworkSettings: Sendable, Hashable {
  public enum Kind: String, Sendable, Hashable, CaseIterable {
    /// The harness's in-process network: it sees, faults and delivers every message.
    case harness
    /// A WebSocket relay (PROTOCOL.md §11): every agent is a real client, in real time; the
    /// relay is an embedded one unless `--relay-url` or `--relay-cmd` names another.
    case relay
  }
  public var kind: Kind = .harness
  /// The token relay clients present (KSP-11.5); the embedded relay then requires it.
  public var token: String?
  /// Whether the harness probes the relay's own rules (KSP-11) after the workload.
  public var probe = true
  public init() {}
}

/// How time runs in a scenario.
public struct TimeSettings: Sendable, Hashable {
  public enum Mode: String, Sendable, Hashable, CaseIterable {
    /// A manual clock: the scenario runs as a discrete-event simulation; 5 idle minutes pass in
    /// no wall time.
    case virtual
    /// The monotonic clock.
    case real
  }

  public var mode: Mode = .virtual
  /// The bus's idle timeout (KSP-6.1); KSP's default when absent.
  public var streamTimeoutMs: Double?
  /// The bus's sweep interval (KSP-6.1); KSP's default when absent.
  public var sweepIntervalMs: Double?
  /// The scenario fails when it has not finished after this much scenario time.
  public var deadlineMs: Double = 3_600_000
  /// Interval between samples of `activeStreams` and memory, in scenario time.
  public var sampleEveryMs: Double = 1_000

  public init(
    mode: Mode = .virtual, streamTimeoutMs: Double? = nil, sweepIntervalMs: Double? = nil,
    deadlineMs: Double = 3_600_000, sampleEveryMs: Double = 1_000
  ) {
    self.mode = mode
    self.streamTimeoutMs = streamTimeoutMs
    self.sweepIntervalMs = sweepIntervalMs
    self.deadlineMs = deadlineMs
    self.sampleEveryMs = sampleEveryMs
  }
}

/// An agent (worker) and the stream methods it serves. With `count` > 1 it stands for a group
/// of workers named `name-0`, `name-1`, ...
public struct AgentSpec: Sendable, Hashable {
  public var name: String
  public var count: Int
  public var methods: [String: ProducerBehaviour]
  /// A slow consumer: each message to this agent takes this much scenario time to process, and
  /// those that arrive meanwhile wait in its inbox.
  public var processingMs: Double

  public init(name: String, count: Int = 1, methods: [String: ProducerBehaviour] = [:], processingMs: Double = 0) {
    self.name = name
    self.count = count
    self.methods = methods
    self.processingMs = processingMs
  }

  public var workerNames: [String] {
    count == 1 ? [name] : (0..<count).map { "\(name)-\($0)" }
  }
}

/// What a stream method does for each stream: emit chunks, then finish.
public struct ProducerBehaviour: Sendable, Hashable {
  public var chunks: Int
  public var content: ChunkContent
  /// Scenario time between chunks; 0 emits as fast as the bus takes them.
  public var intervalMs: Double
  public var finish: Finish
  /// After finishing, the handler tries to emit once more: the emitter must refuse and send
  /// nothing (KSP-4.3).
  public var emitAfterFinish = false

  public init(chunks: Int, content: ChunkContent = .sequence, intervalMs: Double = 0, finish: Finish = .end(nil)) {
    self.chunks = chunks
    self.content = content
    self.intervalMs = intervalMs
    self.finish = finish
  }
}

/// The data of each chunk, generated deterministically from the seed and the chunk's index.
public enum ChunkContent: Sendable, Hashable {
  /// The numbers 0, 1, 2, ...
  case sequence
  /// The same JSON value every time.
  case json(JSONValue)
  /// These values in turn.
  case values([JSONValue])
  /// `{ "i": index, "text": ... }` with `size` characters of text.
  case text(size: Int)
  /// `size` bytes as base64, the first 6 bytes the chunk's index.
  case binary(size: Int)
}

/// How a producer finishes its stream after its chunks.
public enum Finish: Sendable, Hashable {
  /// `stream.end(summary)`; nil: the harness sends `{"chunks": N}`, N the chunks emitted.
  case end(JSONValue?)
  /// `stream.error(error)`.
  case error(SerializedError)
  /// The handler throws `error` (KSP-2.5).
  case throwError(SerializedError)
  /// Never finishes; the idle timeout must reclaim the stream (KSP-6.2).
  case hang
  /// The producer's agent vanishes mid-stream, announced to the others or not (KSP-8).
  case crash(announced: Bool)
}

/// Streams that consumers open to producers.
public struct WorkloadGroup: Sendable, Hashable {
  /// An agent or group that opens the streams.
  public var consumers: String
  /// An agent or group that serves them.
  public var producers: String
  public var method: String
  public var args: JSONValue
  /// How many streams, in all; each goes to the next (consumer, producer) pair in turn.
  public var streams: Int
  /// At most this many open at once (closed model); nil: all at once.
  public var concurrency: Int?
  /// Open model: start streams at this rate per second of scenario time, whatever is open.
  public var ratePerSecond: Double?
  /// Scenario time at which the group starts.
  public var startMs: Double
  /// `callbacks.timeout` for each stream (KSP-6.1).
  public var timeoutMs: Double?
  /// The consumer cancels each stream after receiving this many chunks (KSP-7.1).
  public var cancelAfterChunks: Int?
  /// Consumer callbacks that throw (KSP-4.2, 5.4).
  public var throwingCallbacks: Set<CallbackKind>
  /// Flow control (KSP-FC): the credit window each stream offers; nil: no flow control.
  public var creditWindow: Int?
  /// Open each stream with a `traceId` (`trace-<n>`), which all its messages must carry (KSP-1.4).
  public var traced = false

  public init(
    consumers: String, producers: String, method: String, args: JSONValue = .null, streams: Int = 1,
    concurrency: Int? = nil, ratePerSecond: Double? = nil, startMs: Double = 0, timeoutMs: Double? = nil,
    cancelAfterChunks: Int? = nil, throwingCallbacks: Set<CallbackKind> = []
  ) {
    self.consumers = consumers
    self.producers = producers
    self.method = method
    self.args = args
    self.streams = streams
    self.concurrency = concurrency
    self.ratePerSecond = ratePerSecond
    self.startMs = startMs
    self.timeoutMs = timeoutMs
    self.cancelAfterChunks = cancelAfterChunks
    self.throwingCallbacks = throwingCallbacks
  }
}

/// A consumer callback.
public enum CallbackKind: String, Sendable, Hashable, CaseIterable {
  case onChunk, onEnd, onError
}

/// Something that must hold after the run: a check tied to a KSP rule, or a threshold on a
/// metric.
public struct Expectation: Sendable, Hashable {
  public var kind: Kind
  /// The rule the expectation stands for (the kind's own unless the file names another).
  public var rule: String

  public enum Kind: Sendable, Hashable {
    /// Each stream's chunks arrive once, in order, unchanged, all of them when it ends (KSP-3.2).
    case orderedDelivery
    /// Each stream gets exactly one terminal callback and nothing after it (KSP-4.2).
    case exactlyOneTerminal
    /// Each stream (or `fraction` of them at least) finishes this way.
    case outcome(OutcomeMatch)
    /// `onEnd` receives the summary the producer sent (KSP-4.1).
    case summaryPreserved
    /// No `activeStreams` entry or producer emitter is left on any bus (KSP-9.1).
    case activeStreamsEmpty
    /// Timeouts fire after the timeout and within one sweep of it (KSP-6.2).
    case timeoutWindow
    /// The producer's handler ran exactly this many times per stream (KSP-2.2, 2.4).
    case handlerRuns(Int)
    /// Every message on the wire is a well-formed envelope (KSP-1.1).
    case wireValid
    /// Each stream was opened with exactly one `stream_request` whose payload is
    /// `{ method, args }` as called (KSP-2.1).
    case streamRequests
    /// Every message of a traced stream carries its `traceId` (KSP-1.4).
    case tracePropagated
    /// After end or error the producer sends nothing more for the stream, and its emitter
    /// refuses further calls (KSP-4.3).
    case emitterClosed
    /// The SHA-256 of the bytes received equals that of the bytes sent (KSP-3.2).
    case payloadDigest
    /// Memory allocated after the run is back within `maxBytes` of its baseline (KSP-9.2).
    case memoryReturns(maxBytes: Int)
    /// Memory held during the run stays within `maxBytes` above the baseline (KSP-9.3).
    case peakMemory(maxBytes: Int)
    /// Memory fitted against streams completed (and chunks delivered) grows by no more than
    /// these bytes per stream (per chunk): the leak verdict of long runs (KSP-9.2).
    case noLeak(maxBytesPerStream: Double?, maxBytesPerChunk: Double?)
    /// A metric stays within bounds.
    case metric(Metric, min: Double?, max: Double?)
    /// Malformed messages the harness forges are dropped: no callback, no stream disturbed (KSP-1.2).
    case malformedDropped
    /// Messages addressed to another worker are ignored (KSP-1.3).
    case misaddressedIgnored
    /// Each chunk emitted goes out as one `stream_chunk` to the consumer (KSP-3.1).
    case chunksAddressed
    /// Once the consumer's cancel arrives, the producer's emitter refuses (KSP-7.2).
    case cancelStopsProducer
    /// A cancel from anyone but the consumer is ignored (KSP-7.3).
    case foreignCancelIgnored
    /// Numbered chunks arrive in order without repeats over a faulty transport (KSP-3.4).
    case seqDelivery
    /// Chunks for an ended stream are dropped without a callback (KSP-3.5).
    case inactiveChunksDropped
    /// Only messages accepted from the stream's producer refresh its activity (KSP-3.3).
    case activityRefresh
    /// With `seq` in use, `stream_end` carries the chunk count and `onEnd` follows every chunk (KSP-4.4).
    case endAfterChunks
    /// Each stream cut off by a `disconnect` action ends once: onEnd, or reclaimed (KSP-8.2).
    case disconnectRecovery
    /// Each worker cut off is back within `withinMs`, and its later streams end normally (PERF).
    case reconnect(withinMs: Double)
    /// KSP-11.1: each frame reaches every other open connection unchanged and of its kind, never its sender.
    case relayFanOut
    /// KSP-11.2: frames from one sender reach each receiver in the order sent.
    case relayOrder
    /// KSP-11.3: a text ping is answered pong to its sender only and not forwarded.
    case relayPing
    /// KSP-11.4: the relay's first frame on each connection is one server_info.
    case relayServerInfo
    /// KSP-11.5: without a valid token the upgrade gets 401; no frame of an unadmitted client is forwarded.
    case relayAuth
    /// KSP-11.6: a stalled receiver delays no one; what it cannot take is dropped or it is closed, never buffered without bound.
    case relaySlowReceiver
  }

  public init(_ kind: Kind, rule: String? = nil) {
    self.kind = kind
    self.rule = rule ?? kind.defaultRule
  }

  /// The check's name as written in scenario files.
  public var name: String { kind.name }
}

/// How a stream is expected to finish.
public struct OutcomeMatch: Sendable, Hashable {
  public enum Terminal: String, Sendable, Hashable { case end, error }
  public var terminal: Terminal
  public var code: String?
  public var name: String?
  public var message: String?
  /// The share of streams that must match, 0...1.
  public var fraction: Double

  public init(
    terminal: Terminal, code: String? = nil, name: String? = nil, message: String? = nil, fraction: Double = 1
  ) {
    self.terminal = terminal
    self.code = code
    self.name = name
    self.message = message
    self.fraction = fraction
  }

  /// The rule a finish like this one demonstrates.
  public var rule: String {
    switch (terminal, code) {
    case (.end, _): "KSP-4.1"
    case (.error, ErrorCode.methodNotFound?): "KSP-2.3"
    case (.error, ErrorCode.streamTimeout?): "KSP-6.2"
    case (.error, ErrorCode.streamCancelled?): "KSP-7.1"
    case (.error, ErrorCode.producerGone?): "KSP-8.1"
    case (.error, ErrorCode.busDisposed?): "KSP-10.1"
    case (.error, _): "KSP-5.2"
    }
  }
}

/// Metrics a scenario can bound.
public enum Metric: String, Sendable, Hashable, CaseIterable {
  case latencyP50Us = "latency_p50_us"
  case latencyP90Us = "latency_p90_us"
  case latencyP99Us = "latency_p99_us"
  case latencyP999Us = "latency_p999_us"
  case latencyMaxUs = "latency_max_us"
  /// p99 of the latency from when each chunk was due (open model: corrected for coordinated
  /// omission), in scenario time.
  case correctedLatencyP99Us = "corrected_latency_p99_us"
  case chunksPerSecond = "chunks_per_second"
  case bytesPerSecond = "bytes_per_second"
  case retainedBytes = "retained_bytes"
  case peakBytes = "peak_bytes"
  case chunksDelivered = "chunks_delivered"
  case streamsCompleted = "streams_completed"
  /// The most messages waiting in a slow consumer's inbox at once.
  case maxInboxDepth = "max_inbox_depth"
}

extension Expectation.Kind {
  public var name: String {
    switch self {
    case .orderedDelivery: "ordered_delivery"
    case .exactlyOneTerminal: "exactly_one_terminal"
    case .outcome: "outcome"
    case .summaryPreserved: "summary_preserved"
    case .activeStreamsEmpty: "active_streams_empty"
    case .timeoutWindow: "timeout_window"
    case .handlerRuns: "handler_runs"
    case .wireValid: "wire_valid"
    case .streamRequests: "stream_requests"
    case .tracePropagated: "trace_propagated"
    case .emitterClosed: "emitter_closed"
    case .payloadDigest: "payload_sha256"
    case .memoryReturns: "memory_returns"
    case .peakMemory: "peak_memory"
    case .noLeak: "no_leak"
    case .metric(let m, _, _): m.rawValue
    case .malformedDropped: "malformed_dropped"
    case .misaddressedIgnored: "misaddressed_ignored"
    case .chunksAddressed: "chunks_addressed"
    case .cancelStopsProducer: "cancel_stops_producer"
    case .foreignCancelIgnored: "foreign_cancel_ignored"
    case .seqDelivery: "seq_delivery"
    case .inactiveChunksDropped: "inactive_chunks_dropped"
    case .activityRefresh: "activity_refresh"
    case .endAfterChunks: "end_after_chunks"
    case .disconnectRecovery: "disconnect_recovery"
    case .reconnect: "reconnect"
    case .relayFanOut: "relay_fanout"
    case .relayOrder: "relay_order"
    case .relayPing: "relay_ping"
    case .relayServerInfo: "relay_server_info"
    case .relayAuth: "relay_auth"
    case .relaySlowReceiver: "relay_slow_receiver"
    }
  }

  /// The rules this check can decide: its own, and for a few checks a close relative. A file
  /// may name one of these as the expectation's `rule`, no other (a check decides only what
  /// it observes).
  public var decidableRules: Set<String> {
    switch self {
    case .handlerRuns: ["KSP-2.2", "KSP-2.4"]
    case .outcome:
      [
        "KSP-2.3", "KSP-2.5", "KSP-4.1", "KSP-5.1", "KSP-5.2", "KSP-5.3", "KSP-6.2", "KSP-7.1", "KSP-8.1", "KSP-8.2",
        "KSP-10.1", defaultRule,
      ]
    case .exactlyOneTerminal: ["KSP-4.2", "KSP-5.4"]
    case .timeoutWindow: ["KSP-6.1", "KSP-6.2", "KSP-6.3"]
    case .activeStreamsEmpty: ["KSP-9.1", "KSP-8.2", "KSP-10.1"]
    case .disconnectRecovery: ["KSP-8.2", "KSP-6.2"]
    case .metric(let m, _, _):
      switch m {
      case .retainedBytes, .peakBytes: [defaultRule]
      default: ["PERF", "KSP-9.3", "KSP-3.4"]
      }
    default: [defaultRule]
    }
  }

  public var defaultRule: String {
    switch self {
    case .orderedDelivery: "KSP-3.2"
    case .exactlyOneTerminal: "KSP-4.2"
    case .outcome(let match): match.rule
    case .summaryPreserved: "KSP-4.1"
    case .activeStreamsEmpty: "KSP-9.1"
    case .timeoutWindow: "KSP-6.2"
    case .handlerRuns: "KSP-2.4"
    case .wireValid: "KSP-1.1"
    case .streamRequests: "KSP-2.1"
    case .tracePropagated: "KSP-1.4"
    case .emitterClosed: "KSP-4.3"
    case .payloadDigest: "KSP-3.2"
    case .memoryReturns: "KSP-9.2"
    case .peakMemory: "KSP-9.3"
    case .noLeak: "KSP-9.2"
    case .malformedDropped: "KSP-1.2"
    case .misaddressedIgnored: "KSP-1.3"
    case .chunksAddressed: "KSP-3.1"
    case .cancelStopsProducer: "KSP-7.2"
    case .foreignCancelIgnored: "KSP-7.3"
    case .seqDelivery: "KSP-3.4"
    case .inactiveChunksDropped: "KSP-3.5"
    case .activityRefresh: "KSP-3.3"
    case .endAfterChunks: "KSP-4.4"
    case .disconnectRecovery: "KSP-8.2"
    case .reconnect: "PERF"
    case .relayFanOut: "KSP-11.1"
    case .relayOrder: "KSP-11.2"
    case .relayPing: "KSP-11.3"
    case .relayServerInfo: "KSP-11.4"
    case .relayAuth: "KSP-11.5"
    case .relaySlowReceiver: "KSP-11.6"
    case .metric(let m, _, _):
      switch m {
      case .retainedBytes: "KSP-9.2"
      case .peakBytes: "KSP-9.3"
      default: "PERF"
      }
    }
  }

  /// The names of every check kind, as scenario files write them (``ScenarioFormat/checks``).
  public static var checkNames: [String] { ScenarioFormat.checkNames }
}

/// A fault of the harness network. It applies to the messages that match all of its filters;
/// every random choice comes from the scenario's seed, so a run replays from it.
public struct Fault: Sendable, Hashable {
  public enum Kind: Sendable, Hashable {
    /// The message is lost.
    case drop
    /// The message arrives twice.
    case duplicate
    /// The message arrives late, by a delay drawn from the distribution (messages overtake
    /// each other when delays differ).
    case delay(Distribution)
    /// A forged message for each matching stream, `afterMs` after its `stream_request` (after its
    /// `stream_end` for ``Forgery/chunkAfterEnd``).
    case forge(Forgery, from: String?, afterMs: Double)
  }

  /// Messages the harness forges, each testing one rule of the receiving bus.
  public enum Forgery: String, Sendable, Hashable, CaseIterable {
    /// A `stream_cancel` to the producer from agent `from`, not the consumer (KSP-7.3).
    case cancel
    /// Chunks to the consumer that break KSP-1.1: an invalid sender name, an oversized id (KSP-1.2).
    case malformedChunk = "malformed_chunk"
    /// A chunk handed to the consumer though addressed to another worker (KSP-1.3).
    case misaddressedChunk = "misaddressed_chunk"
    /// A `stream_error` from the producer without an `error` field (KSP-5.3).
    case errorWithoutError = "error_without_error"
    /// A chunk from the producer after the stream ended (KSP-3.5).
    case chunkAfterEnd = "chunk_after_end"
    /// A chunk for the stream to the consumer from agent `from`, not the producer: it must not
    /// count as the stream's activity (KSP-3.3).
    case foreignChunk = "foreign_chunk"

    /// Whether the forgery names the agent it comes from.
    public var needsSender: Bool { self == .cancel || self == .foreignChunk }
  }

  /// Delays in milliseconds of scenario time.
  public enum Distribution: Sendable, Hashable {
    case constant(Double)
    case uniform(min: Double, max: Double)
    case exponential(mean: Double)
  }

  public var kind: Kind
  /// Message types it applies to; empty: all.
  public var types: Set<MessageType> = []
  /// Only the message with this index (from 0) among each stream's messages of `types`.
  public var nth: Int?
  /// The chance that a matching message is hit, 0...1.
  public var probability: Double = 1
  /// Only messages between these two agents or groups (either way): a partition.
  public var between: (String, String)?
  /// Only in this window of scenario time, in ms (a partition that heals).
  public var fromMs: Double?
  public var untilMs: Double?

  public init(
    _ kind: Kind, types: Set<MessageType> = [], nth: Int? = nil, probability: Double = 1,
    between: (String, String)? = nil, fromMs: Double? = nil, untilMs: Double? = nil
  ) {
    self.kind = kind
    self.types = types
    self.nth = nth
    self.probability = probability
    self.between = between
    self.fromMs = fromMs
    self.untilMs = untilMs
  }

  public static func == (a: Fault, b: Fault) -> Bool {
    a.kind == b.kind && a.types == b.types && a.nth == b.nth && a.probability == b.probability
      && a.between?.0 == b.between?.0 && a.between?.1 == b.between?.1 && a.fromMs == b.fromMs && a.untilMs == b.untilMs
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(kind)
    hasher.combine(types)
    hasher.combine(nth)
  }
}

/// Something the harness does at a set scenario time.
public struct Action: Sendable, Hashable {
  public enum Kind: Sendable, Hashable {
    /// Dispose the buses of this agent (KSP-10.1).
    case dispose(String)
    /// Close the relay connections of this agent's workers; their buses reconnect on their own
    /// (PROTOCOL.md §11), and the streams they had open are judged (`disconnect_recovery`).
    case disconnect(String)

    /// The agent the action acts on.
    public var agent: String {
      switch self {
      case .dispose(let agent), .disconnect(let agent): agent
      }
    }
  }

  /// Whether the action cuts relay connections.
  public var isDisconnect: Bool { if case .disconnect = kind { true } else { false } }

  public var atMs: Double
  public var kind: Kind

  public init(atMs: Double, kind: Kind) {
    self.atMs = atMs
    self.kind = kind
  }
}
