public import KenshoProtocol
public import KenshoScenario

/// Everything that happened in one scenario run, in the order the harness saw it: every
/// operation the harness asked of a bus and its result, every message as sent, every fault
/// decision, every delivery, every callback. It is the only input of the checks (as Jepsen
/// and Maelstrom record a history and then check it), the same whether the buses ran in
/// process or behind adapters.
///
/// It holds no payloads, only their I-JSON fingerprints (``JSONValue/ijsonFingerprint``), so
/// that recording a long run costs a few words per event and never keeps data alive.
public struct History: Sendable {
  /// A worker, by its index in ``workers``.
  public typealias Worker = Int32
  /// A stream, by its index in ``streams`` (the order the harness opened them).
  public typealias Stream = Int32
  /// A message, by its index in ``wire``.
  public typealias Message = Int32

  /// Every worker name seen, scenario workers first; names only senders used (a forged
  /// `9-not-a-worker`) come after.
  public var workers: [String] = []
  /// How many of ``workers`` are the scenario's own.
  public var scenarioWorkers = 0
  public var streams: [StreamInfo] = []
  public var wire: [WireRecord] = []
  public var events: [Entry] = []
  /// Errors that callbacks and messages carried, referenced by index.
  public var errors: [SerializedError] = []
  /// Lines an implementation sent as messages that could not even be read as one (KSP-1.1).
  public var undecodable: [(from: Worker, problem: String, t: Int64)] = []
  /// Why messages broke KSP-1.1, referenced by ``WireRecord/problem``.
  public var problems: [String] = []
  /// The JSON text of selected messages (invalid, forged, and those of the first streams), for
  /// counterexamples and the wire log; at most ``exhibitLimit`` of them.
  public var exhibits: [Message: String] = [:]
  public static let exhibitLimit = 512
  /// Each worker's bus statistics after the run, or why they could not be read.
  public var finalStats: [Worker: StatsReading] = [:]
  /// Capabilities of the implementation (the adapter's handshake; every one in process).
  public var capabilities: Set<Capability> = Set(Capability.allCases)
  /// Scenario time at the end of the run, ns.
  public var endedAt: Int64 = 0
  /// SHA-256 of the bytes sent and received, per stream, for binary content (base64).
  public var digests: [Int: (sent: String, received: String)] = [:]
  /// The consumers' sweep interval, ns (KSP-6.1).
  public var sweepInterval: Int64 = 60_000_000_000
  /// How much later than it happened the harness may see, on its own clock, what an
  /// implementation did on its clock, ns: zero in virtual time (one clock); in real time the
  /// transit through pipes or sockets and the scheduling of timers and threads. Checks that
  /// bound how late something may happen (a timeout within one sweep) allow this much more;
  /// delays only make a timeout look later, so bounds on how early stay exact.
  public var observationSlack: Int64 = 0
  /// The latest a stream idle since `last` may time out: its timeout and one sweep after, plus
  /// ``observationSlack``.
  public func latestTimeout(of stream: Int, after last: Int64) -> Int64 {
    Nanos.adding(Nanos.adding(Nanos.adding(last, streams[stream].timeout), sweepInterval), observationSlack)
  }
  /// Words for the slack in a counterexample ("" in virtual time).
  public var slackNote: String {
    observationSlack > 0 ? ", + \(History.ms(observationSlack)) ms for real time" : ""
  }
  /// Whether the run reached its end (every stream terminal) rather than a deadline.
  public var complete = true
  /// What the harness's probe saw at the relay, when the scenario ran over one (KSP-11).
  public var relay: RelayJournal?

  public init() {}

  public func name(_ w: Worker) -> String { w >= 0 && Int(w) < workers.count ? workers[Int(w)] : "?" }

  /// Whether `w` is one of the scenario's workers.
  public func isScenarioWorker(_ w: Worker) -> Bool { w >= 0 && Int(w) < scenarioWorkers }

  /// "stream #3 (s-12, consumer ← producer)".
  public func label(_ s: Stream) -> String {
    guard s >= 0, Int(s) < streams.count else { return "an unknown stream" }
    let info = streams[Int(s)]
    return "stream #\(s) (\(info.streamId ?? "no id"), \(name(info.consumer)) ← \(name(info.producer)))"
  }

  /// "stream_chunk seq 3 from producer to consumer".
  public func describe(_ m: Message) -> String {
    guard m >= 0, Int(m) < wire.count else { return "an unknown message" }
    let w = wire[Int(m)]
    var text = w.type.rawValue
    if w.seq >= 0 { text += " seq \(w.seq)" }
    if w.creditFrame { text += " (credit frame)" }
    text += " from \(name(w.from)) to \(w.to == WireRecord.broadcast ? "*" : name(w.to))"
    if case .forged(let kind) = w.origin { text += ", forged by the harness (\(kind))" }
    return text
  }

  public static func ms(_ ns: Int64) -> Double { Double(ns) / 1e6 }
}

/// What the harness knows of one stream it opened.
public struct StreamInfo: Sendable, Hashable {
  public var group: Int
  public var consumer: History.Worker
  public var producer: History.Worker
  public var method: String
  /// Fingerprint of `{"method": ..., "args": ...}`, the payload KSP-2.1 requires.
  public var requestPayload: UInt64
  public var streamId: String?
  public var traceId: String?
  /// Scenario time the harness asked for it, and when it was due (open model), ns.
  public var openedAt: Int64 = 0
  public var dueAt: Int64 = 0
  /// Its idle timeout, ns.
  public var timeout: Int64
  /// The credit window offered (KSP-FC), if any.
  public var creditWindow: Int?
  /// What the scenario's producer does: the number of chunks and how it finishes.
  public var plannedChunks: Int
  public var plannedFinish: PlannedFinish
  /// Fingerprint of the summary the producer ends with, when it ends.
  public var plannedSummary: UInt64?
  /// The consumer cancels after this many chunks.
  public var cancelAfterChunks: Int?
  /// The consumer's callbacks that throw (KSP-4.2, 5.4).
  public var throwingCallbacks: Set<CallbackKind> = []

  public init(
    group: Int, consumer: History.Worker, producer: History.Worker, method: String, requestPayload: UInt64,
    timeout: Int64, plannedChunks: Int, plannedFinish: PlannedFinish
  ) {
    self.group = group
    self.consumer = consumer
    self.producer = producer
    self.method = method
    self.requestPayload = requestPayload
    self.timeout = timeout
    self.plannedChunks = plannedChunks
    self.plannedFinish = plannedFinish
  }
}

/// How a scenario's producer finishes its stream.
public enum PlannedFinish: String, Sendable, Hashable {
  case end, error
  case throwError = "throw"
  case hang, crash
  /// No producer method: the consumer asks a worker that has none (KSP-2.3).
  case noMethod = "no_method"
}

/// One message on the wire, as a bus (or the harness's forger) sent it.
public struct WireRecord: Sendable, Hashable {
  public static let broadcast: History.Worker = -2
  public static let none: Int32 = -1

  public var type: MessageType
  public var from: History.Worker
  /// The addressee, or ``broadcast``.
  public var to: History.Worker
  /// The stream the message is about, when its `streamId` is one the harness opened.
  public var stream: History.Stream
  /// `metadata.seq`, or -1.
  public var seq: Int32
  /// I-JSON fingerprint of the payload.
  public var payload: UInt64
  /// Index in ``History/problems`` when the message breaks KSP-1.1, else -1.
  public var problem: Int32
  /// Index in ``History/errors`` of its `error`, else -1.
  public var error: Int32
  /// Fingerprint of the `messageId` (duplicates, KSP-2.4).
  public var messageId: UInt64
  /// Whether it carried the `traceId` of its stream's request (nil when the stream had none).
  public var traceOK: Bool?
  /// A flow-control credit frame (KSP-FC): a `stream_chunk` with `metadata.credit` and no seq.
  public var creditFrame: Bool
  public var origin: Origin
  /// Scenario time it was sent, ns.
  public var t: Int64

  public enum Origin: Sendable, Hashable {
    /// Sent by a bus under test.
    case bus
    /// Made by the harness to test a rule (a fault of kind `forge`).
    case forged(String)
  }

  public init(
    type: MessageType, from: History.Worker, to: History.Worker, stream: History.Stream, seq: Int32, payload: UInt64,
    problem: Int32, error: Int32, messageId: UInt64, traceOK: Bool?, creditFrame: Bool, origin: Origin, t: Int64
  ) {
    self.type = type
    self.from = from
    self.to = to
    self.stream = stream
    self.seq = seq
    self.payload = payload
    self.problem = problem
    self.error = error
    self.messageId = messageId
    self.traceOK = traceOK
    self.creditFrame = creditFrame
    self.origin = origin
    self.t = t
  }

  public var isForged: Bool { if case .forged = origin { true } else { false } }
}

/// One event of the history, at a scenario time (ns).
public struct Entry: Sendable, Hashable {
  public var t: Int64
  public var event: Event

  public init(t: Int64, event: Event) {
    self.t = t
    self.event = event
  }
}

/// What an emitter call returned.
public enum EmitResult: UInt8, Sendable, Hashable {
  case ok, closed, cancelled, noCredit
}

/// What the harness decided about a message on its network.
public enum FaultDecision: Sendable, Hashable {
  case dropped
  /// One more copy will be delivered.
  case duplicated
  /// Held back by this many ns.
  case delayed(Int64)
  /// Not delivered: the sender or the receiver is cut off (crash, partition).
  case cutOff
  /// Waits in a slow consumer's inbox.
  case queued
}

/// Things that happen in a run.
public enum Event: Sendable, Hashable {
  /// The harness asks the consumer's bus to open the stream (`callAgentStream`).
  case open(History.Stream)
  /// `callAgentStream` returned the stream's id.
  case opened(History.Stream)
  /// `callAgentStream` failed (the consumer's bus is gone).
  case openFailed(History.Stream)
  /// The producer's handler ran, for a stream the harness opened (or -1 for another id).
  case handler(History.Stream, worker: History.Worker)
  /// The producer's emitter was asked to send chunk `index`, with this payload fingerprint.
  case emit(History.Stream, index: Int32, payload: UInt64, result: EmitResult)
  /// The producer's emitter was asked to end (`error` false) or fail the stream.
  case finish(History.Stream, error: Bool, result: EmitResult)
  /// The emitter was asked for one more chunk after finishing (KSP-4.3).
  case emitAfterFinish(History.Stream, result: EmitResult)
  /// The consumer's `cancelStream`, and whether it had the stream.
  case cancel(History.Stream, accepted: Bool)
  /// A bus was disposed (KSP-10.1), by the scenario or because its agent crashed.
  case dispose(History.Worker)
  /// A worker crashed; `announced` when the others were told (KSP-8.1).
  case crash(History.Worker, announced: Bool)
  /// The harness closed the worker's relay connection (a `disconnect` action).
  case disconnected(History.Worker)
  /// A relay connection labelled with the worker's name was admitted (joining, or back after
  /// a disconnection).
  case connected(History.Worker)
  /// A bus sent a message (or the harness forged one).
  case sent(History.Message)
  /// A fault decision on a message.
  case fault(History.Message, FaultDecision)
  /// A message was handed to a worker's bus.
  case delivered(History.Message, to: History.Worker)
  /// A consumer callback ran: `onChunk` with a payload fingerprint, `onEnd` with the summary's,
  /// `onError` with an index in ``History/errors``.
  case onChunk(History.Stream, payload: UInt64)
  case onEnd(History.Stream, summary: UInt64)
  case onError(History.Stream, error: Int32)
}

/// A bus's statistics as read after the run.
public enum StatsReading: Sendable, Hashable {
  case read(activeStreams: Int, emitters: Int)
  /// The bus could not say (an adapter failed the `stats` operation or did not answer).
  case failed(String)
  /// Its agent crashed: nothing to ask.
  case crashed
}

/// What an implementation can do, as its adapter declares (`capabilities` in the handshake).
public enum Capability: String, Sendable, Hashable, CaseIterable, Codable {
  case virtualTime = "virtual_time"
  case stats, cancel, seq
  case peerDown = "peer_down"
  case flowControl = "flow_control"
  /// Memory of the implementation is measured (in process: jemalloc).
  case memory
}
