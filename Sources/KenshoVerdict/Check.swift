public import KenshoProtocol
import KenshoScenario

/// A check: one small pure type that decides one requirement from a run's ``History`` (and,
/// for thresholds, its ``Metrics``). It says which situation it needs; when that situation
/// never occurred it answers ``CheckOutcome/untested(_:)``, never a pass.
public protocol Check: Sendable {
  /// The rule it decides (an id of `KSPRule.all`, or `PERF`).
  var rule: String { get }
  /// What a passing run looks like, in a phrase.
  var expected: String { get }
  func judge(_ run: RunRecord) -> CheckOutcome
}

/// What a check found.
public enum CheckOutcome: Sendable, Hashable {
  case pass(observed: String)
  case fail(observed: String, Counterexample)
  /// The situation the rule speaks of never occurred; says which.
  case untested(String)
  /// The implementation lacks what the check needs.
  case unsupported(String)
  /// The implementation could not answer what the check needs (an operation failed).
  case error(String)
}

/// The input of every check: the history, with each stream's events gathered once.
public struct RunRecord: Sendable {
  public let history: History
  public let metrics: Metrics
  public let timelines: [StreamTimeline]
  /// The relay connections the harness cut, in order.
  public let disconnections: [Disconnection]

  public init(history: History, metrics: Metrics) {
    self.history = history
    self.metrics = metrics
    let cuts = Disconnection.all(in: history)
    var timelines = StreamTimeline.build(history)
    Disconnection.mark(&timelines, history, cuts)
    self.timelines = timelines
    self.disconnections = cuts
  }

  public func label(_ s: Int) -> String { history.label(Int32(s)) }

  /// A counterexample about stream `s`, at scenario time `t` (ns).
  public func counterexample(stream s: Int, message: Int32? = nil, at t: Int64? = nil, _ text: String)
    -> Counterexample
  {
    let id = s >= 0 && s < history.streams.count ? history.streams[s].streamId : nil
    return Counterexample(
      stream: s, streamId: id, message: message.map(Int.init), atMs: t.map(History.ms),
      text: "\(label(s)): \(text)" + (t.map { " (at \(History.ms($0)) ms)" } ?? ""))
  }

  public func has(_ c: Capability) -> Bool { history.capabilities.contains(c) }
}

/// One stream's events, gathered from the history.
public struct StreamTimeline: Sendable {
  public struct Emitted: Sendable, Hashable {
    public var index: Int32
    public var payload: UInt64
    public var t: Int64
  }
  public enum Terminal: Sendable, Hashable {
    case end(summary: UInt64)
    case error(Int32)
  }

  /// Chunks the producer's emitter accepted, in order.
  public var emitted: [Emitted] = []
  /// Whether the producer ended (false) or failed (true) the stream, with the emitter's answer.
  public var finish: (error: Bool, result: EmitResult, t: Int64)?
  public var emitAfterFinish: EmitResult?
  /// `onChunk` payloads in order, with their times.
  public var chunks: [(payload: UInt64, t: Int64)] = []
  /// Terminal callbacks in order (more than one breaks KSP-4.2).
  public var terminals: [(Terminal, t: Int64)] = []
  /// `onChunk` calls after the first terminal callback.
  public var chunksAfterTerminal = 0
  /// Messages sent about this stream (indices in the wire log).
  public var messages: [Int32] = []
  /// Deliveries of this stream's messages: message, receiver, time.
  public var deliveries: [(message: Int32, to: History.Worker, t: Int64, beforeTerminal: Bool)] = []
  /// Fault decisions on this stream's messages.
  public var faults: [(message: Int32, FaultDecision)] = []
  /// Handler runs for this stream, and where.
  public var handlerRuns: [History.Worker] = []
  public var cancels: [(accepted: Bool, t: Int64)] = []
  public var openFailed = false
  public var opened = false
  /// The disconnection (index in ``RunRecord/disconnections``) that cut the stream's consumer
  /// or producer off while the stream was open, if one did.
  public var cutOff: Int?
  /// Whether its producer was cut off while it was open: what the producer sent then may have
  /// reached no one, the relay included (where an adapter's wire is recorded).
  public var producerCut = false
  /// Whether its consumer was cut off while it was open (its request or cancel may be lost).
  public var consumerCut = false

  public var terminal: (Terminal, t: Int64)? { terminals.first }

  static func build(_ h: History) -> [StreamTimeline] {
    var out = Array(repeating: StreamTimeline(), count: h.streams.count)
    func valid(_ s: Int32) -> Int? { s >= 0 && Int(s) < out.count ? Int(s) : nil }
    func streamOf(_ m: Int32) -> Int? { m >= 0 && Int(m) < h.wire.count ? valid(h.wire[Int(m)].stream) : nil }
    for entry in h.events {
      switch entry.event {
      case .open: break
      case .opened(let s): if let i = valid(s) { out[i].opened = true }
      case .openFailed(let s): if let i = valid(s) { out[i].openFailed = true }
      case .handler(let s, let worker): if let i = valid(s) { out[i].handlerRuns.append(worker) }
      case .emit(let s, let index, let payload, let result):
        if let i = valid(s), result == .ok {
          out[i].emitted.append(Emitted(index: index, payload: payload, t: entry.t))
        }
      case .finish(let s, let error, let result):
        if let i = valid(s), out[i].finish == nil { out[i].finish = (error, result, entry.t) }
      case .emitAfterFinish(let s, let result): if let i = valid(s) { out[i].emitAfterFinish = result }
      case .cancel(let s, let accepted): if let i = valid(s) { out[i].cancels.append((accepted, entry.t)) }
      case .dispose, .crash, .disconnected, .connected: break
      case .sent(let m): if let i = streamOf(m) { out[i].messages.append(m) }
      case .fault(let m, let decision): if let i = streamOf(m) { out[i].faults.append((m, decision)) }
      case .delivered(let m, let to):
        if let i = streamOf(m) { out[i].deliveries.append((m, to, entry.t, out[i].terminals.isEmpty)) }
      case .onChunk(let s, let payload):
        if let i = valid(s) {
          if out[i].terminals.isEmpty {
            out[i].chunks.append((payload, entry.t))
          } else {
            out[i].chunksAfterTerminal += 1
          }
        }
      case .onEnd(let s, let summary):
        if let i = valid(s) { out[i].terminals.append((.end(summary: summary), entry.t)) }
      case .onError(let s, let error): if let i = valid(s) { out[i].terminals.append((.error(error), entry.t)) }
      }
    }
    return out
  }

  /// Whether the harness's network carried this stream's data messages from the producer
  /// to the consumer as a transport that keeps order would: no drop, repeat, delay or cut.
  public func transportKeptOrder(_ h: History) -> Bool {
    if cutOff != nil { return false }  // a relay connection cut while it was open
    for (m, decision) in faults {
      let w = h.wire[Int(m)]
      guard !w.creditFrame, w.type != .streamRequest, w.type != .streamCancel else { continue }
      if case .queued = decision { continue }  // a slow consumer's inbox keeps order
      return false
    }
    return true
  }
}

extension StreamTimeline.Terminal {
  public func describe(_ h: History) -> String {
    switch self {
    case .end: "onEnd"
    case .error(let e):
      e >= 0 && Int(e) < h.errors.count ? "onError(\(h.errors[Int(e)]))" : "onError"
    }
  }

  public func error(_ h: History) -> SerializedError? {
    if case .error(let e) = self, e >= 0, Int(e) < h.errors.count { return h.errors[Int(e)] }
    return nil
  }
}
