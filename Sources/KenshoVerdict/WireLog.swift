/// A bounded excerpt of a run's history for the reports: the messages (and the few operations
/// and callbacks) of the streams that failing checks point at, each message with what the
/// harness's network did with it — lost, cut off by a partition, duplicated, delayed, queued,
/// forged — and the counterexample's message marked.
///
/// A history can hold millions of messages; an excerpt never holds more than ``streamLimit``
/// streams of at most ``rowLimit`` rows each (the messages around each counterexample, the
/// first and last ones, then those the network or the harness did something to). What it
/// leaves out is counted (``Row/skippedBefore``, ``Stream/skippedAfter``).
public struct WireLog: Sendable, Hashable, Codable {
  /// Streams shown at most.
  public static let streamLimit = 6
  /// Rows kept per stream at most.
  public static let rowLimit = 240
  /// Rows of the sample kept for a scenario with nothing to explain.
  public static let sampleLimit = 24

  /// Why a stream is in the excerpt.
  public enum Reason: String, Sendable, Hashable, Codable {
    /// A failing (or non-strict) check's counterexample is about it.
    case counterexample
    /// The run stopped before it ended.
    case unfinished
    /// A sample of a run with nothing to explain.
    case sample
  }

  public struct Stream: Sendable, Hashable, Codable {
    /// Index of the stream in the run, or nil for messages about no stream the harness opened.
    public var index: Int?
    /// "stream #3 (s-12, consumer ← producer)".
    public var label: String
    public var consumer: String?
    public var producer: String?
    public var reason: Reason
    /// Messages about the stream in the whole history.
    public var messages: Int
    public var rows: [Row]
    /// Rows left out after the last one kept.
    public var skippedAfter: Int

    public init(
      index: Int?, label: String, consumer: String?, producer: String?, reason: Reason, messages: Int, rows: [Row],
      skippedAfter: Int = 0
    ) {
      self.index = index
      self.label = label
      self.consumer = consumer
      self.producer = producer
      self.reason = reason
      self.messages = messages
      self.rows = rows
      self.skippedAfter = skippedAfter
    }
  }

  /// What the network did with a message (a message can be duplicated and delayed at once).
  public enum Fate: String, Sendable, Hashable, Codable, CaseIterable {
    case lost
    /// Not delivered because its sender or receiver was cut off (a partition).
    case cutOff = "cut_off"
    case duplicated, delayed
    /// Waited in a slow consumer's inbox.
    case queued
  }

  public struct Row: Sendable, Hashable, Codable {
    /// Index of the message in the history's wire log; nil for an operation or a callback.
    public var message: Int?
    /// Scenario time, ms.
    public var t: Double
    /// The message type (`stream_chunk`), or the event (`onError`, `cancel`, `crash`, ...).
    public var type: String
    public var from: String
    /// The addressee (`*` for a broadcast); for an event, the worker it happened at.
    public var to: String
    public var seq: Int?
    public var creditFrame: Bool
    /// The kind of forgery, when the harness made the message.
    public var forged: String?
    /// Why the message breaks KSP-1.1, when it does.
    public var problem: String?
    /// For a message or callback carrying an error: its code or name.
    public var error: String?
    public var fates: [Fate]
    /// The delay, ms, when delayed.
    public var delayMs: Double?
    /// How many times it was handed to a bus, and to whom when not (only) its addressee.
    public var deliveries: Int
    public var deliveredTo: [String]
    /// The message's JSON text, when the history kept it.
    public var exhibit: String?
    /// Checks whose counterexample is this message.
    public var offending: [String]
    /// Messages of the stream left out just before this row.
    public var skippedBefore: Int
    /// More for an event: "accepted", "result: cancelled".
    public var note: String?

    public var isEvent: Bool { message == nil }

    public init(
      message: Int?, t: Double, type: String, from: String, to: String, seq: Int? = nil, creditFrame: Bool = false,
      forged: String? = nil, problem: String? = nil, error: String? = nil, fates: [Fate] = [], delayMs: Double? = nil,
      deliveries: Int = 0, deliveredTo: [String] = [], exhibit: String? = nil, offending: [String] = [],
      skippedBefore: Int = 0, note: String? = nil
    ) {
      self.message = message
      self.t = t
      self.type = type
      self.from = from
      self.to = to
      self.seq = seq
      self.creditFrame = creditFrame
      self.forged = forged
      self.problem = problem
      self.error = error
      self.fates = fates
      self.delayMs = delayMs
      self.deliveries = deliveries
      self.deliveredTo = deliveredTo
      self.exhibit = exhibit
      self.offending = offending
      self.skippedBefore = skippedBefore
      self.note = note
    }
  }

  public var streams: [Stream]

  public init(streams: [Stream] = []) { self.streams = streams }

  public var isEmpty: Bool { streams.isEmpty }

  /// The excerpt of `run` that explains `checks`: the streams their counterexamples point at
  /// (non-passing checks only), the first stream left unfinished when the run stopped early,
  /// or else a short sample of the first stream.
  public static func excerpt(_ run: RunRecord, checks: [CheckResult]) -> WireLog {
    let h = run.history
    var wanted: [(stream: Int?, reason: Reason)] = []
    var offending: [Int: [String]] = [:]
    var around: [Int?: [Double]] = [:]
    func want(_ s: Int?, _ reason: Reason) {
      if !wanted.contains(where: { $0.stream == s }) { wanted.append((s, reason)) }
    }
    for c in checks where c.verdict == .fail || c.verdict == .nonStrict {
      guard let x = c.counterexample else { continue }
      var stream = x.stream.flatMap { $0 >= 0 && $0 < h.streams.count ? $0 : nil }
      if let m = x.message, m >= 0, m < h.wire.count {
        offending[m, default: []].append(c.name)
        let own = Int(h.wire[m].stream)
        if stream == nil || own != stream { stream = own >= 0 ? own : nil }
        // A forged message about another stream (or none) is shown with its own stream.
        want(stream, .counterexample)
      } else if stream != nil {
        want(stream, .counterexample)
      }
      if let at = x.atMs { around[stream, default: []].append(at) }
    }
    if !h.complete, let stuck = run.timelines.indices.first(where: { run.timelines[$0].terminal == nil }) {
      want(stuck, .unfinished)
    }
    let failing = checks.contains { $0.verdict >= .nonStrict }
    if wanted.isEmpty && !failing && !h.streams.isEmpty { want(0, .sample) }
    let streams = wanted.prefix(streamLimit).map { w in
      stream(
        run, w.stream, reason: w.reason, offending: offending, around: around[w.stream] ?? [],
        limit: w.reason == .sample ? sampleLimit : rowLimit)
    }
    return WireLog(streams: Array(streams))
  }

  /// One stream's rows: messages with their fates and deliveries, and its operations and callbacks.
  static func stream(
    _ run: RunRecord, _ s: Int?, reason: Reason, offending: [Int: [String]], around: [Double], limit: Int
  ) -> Stream {
    let h = run.history
    // The messages (by wire index) and events of the stream, in history order.
    var messages: [Int32] = []
    var fates: [Int32: [FaultDecision]] = [:]
    var deliveries: [Int32: [History.Worker]] = [:]
    var events: [(position: Int, entry: Entry)] = []
    if let s {
      let tl = run.timelines[s]
      messages = tl.messages
      for (m, d) in tl.faults { fates[m, default: []].append(d) }
      for d in tl.deliveries { deliveries[d.message, default: []].append(d.to) }
      // Events are placed after the messages sent before them.
      var sentSoFar = 0
      for entry in h.events {
        switch entry.event {
        case .sent(let m): if h.wire[Int(m)].stream == Int32(s) { sentSoFar += 1 }
        case .opened(let x), .openFailed(let x), .handler(let x, _), .finish(let x, _, _), .emitAfterFinish(let x, _),
          .cancel(let x, _), .onEnd(let x, _), .onError(let x, _):
          if x == Int32(s) { events.append((sentSoFar, entry)) }
        case .crash(let w, _), .disconnected(let w), .connected(let w):
          let info = h.streams[s]
          if w == info.producer || w == info.consumer { events.append((sentSoFar, entry)) }
        default: break
        }
        if events.count > 64 { break }
      }
    } else {
      // Messages about no stream the harness opened: just the offending ones.
      messages = offending.keys.filter { h.wire[$0].stream < 0 }.sorted().map { Int32($0) }
      let set = Set(messages)
      for entry in h.events {
        switch entry.event {
        case .fault(let m, let d) where set.contains(m): fates[m, default: []].append(d)
        case .delivered(let m, let to) where set.contains(m): deliveries[m, default: []].append(to)
        default: break
        }
      }
    }
    let faulted = Set(fates.filter { $0.value.contains { $0 != .queued } }.keys)
    let keep = selection(h, messages, offending: offending, faulted: faulted, around: around, limit: limit)
    var rows: [Row] = []
    var lastKept = -1
    var eventIndex = 0
    func flushEvents(upTo position: Int) {
      while eventIndex < events.count, events[eventIndex].position <= position {
        if let row = eventRow(h, events[eventIndex].entry) { rows.append(row) }
        eventIndex += 1
      }
    }
    for i in keep {
      flushEvents(upTo: i)
      let m = messages[i]
      var row = messageRow(h, m, fates: fates[m] ?? [], deliveries: deliveries[m] ?? [])
      row.offending = offending[Int(m)] ?? []
      row.skippedBefore = i - lastKept - 1
      rows.append(row)
      lastKept = i
    }
    flushEvents(upTo: Int.max)
    let info = s.map { h.streams[$0] }
    if let s, let info, run.timelines[s].terminal == nil {
      // What did not happen is part of the story: no onEnd or onError by the end of the run.
      let name = h.name(info.consumer)
      rows.append(
        Row(
          message: nil, t: History.ms(h.endedAt), type: "no terminal callback", from: name, to: name,
          note: "by the end of the run"))
    }
    return Stream(
      index: s, label: s.map { h.label(Int32($0)) } ?? "messages about no stream the harness opened",
      consumer: info.map { h.name($0.consumer) }, producer: info.map { h.name($0.producer) }, reason: reason,
      messages: messages.count, rows: rows, skippedAfter: messages.count - lastKept - 1)
  }

  /// Which of a stream's messages (by position) to keep: all when they fit; else those around
  /// each counterexample, the first and the last, then those the network or the harness did
  /// something to (lost, cut off, duplicated, delayed, forged, invalid), then the rest that is
  /// not a plain chunk.
  static func selection(
    _ h: History, _ messages: [Int32], offending: [Int: [String]], faulted: Set<Int32>, around: [Double], limit: Int
  ) -> [Int] {
    guard messages.count > limit else { return Array(messages.indices) }
    var keep = Set<Int>()
    func add(_ range: Range<Int>) {
      for i in range.clamped(to: messages.indices) where keep.count < limit { keep.insert(i) }
    }
    let window = max(2, limit / 12)
    for (i, m) in messages.enumerated() where offending[Int(m)] != nil { add((i - window)..<(i + window + 1)) }
    for at in around {
      let ns = Int64(at * 1e6)
      let i = messages.firstIndex { h.wire[Int($0)].t >= ns } ?? messages.count - 1
      add((i - window)..<(i + window + 1))
    }
    add(0..<window * 2)
    add((messages.count - window)..<messages.count)
    // Then what the network or the harness did something to, then what is not a plain chunk.
    for (i, m) in messages.enumerated() where keep.count < limit {
      let w = h.wire[Int(m)]
      if faulted.contains(m) || w.isForged || w.problem >= 0 { keep.insert(i) }
    }
    for (i, m) in messages.enumerated() where keep.count < limit {
      let w = h.wire[Int(m)]
      if w.error >= 0 || w.type != .streamChunk { keep.insert(i) }
    }
    return keep.sorted()
  }

  static func messageRow(_ h: History, _ m: Int32, fates decisions: [FaultDecision], deliveries: [History.Worker])
    -> Row
  {
    let w = h.wire[Int(m)]
    var fates: [Fate] = []
    var delay: Int64 = 0
    for d in decisions {
      let fate: Fate
      switch d {
      case .dropped: fate = .lost
      case .cutOff: fate = .cutOff
      case .duplicated: fate = .duplicated
      case .delayed(let ns):
        fate = .delayed
        delay += ns
      case .queued: fate = .queued
      }
      if !fates.contains(fate) { fates.append(fate) }
    }
    var forged: String?
    if case .forged(let kind) = w.origin { forged = kind }
    let problem = w.problem >= 0 && Int(w.problem) < h.problems.count ? h.problems[Int(w.problem)] : nil
    let error = w.error >= 0 && Int(w.error) < h.errors.count ? h.errors[Int(w.error)] : nil
    var others: [String] = []
    for d in deliveries where d != w.to {
      let name = h.name(d)
      if !others.contains(name) { others.append(name) }
    }
    return Row(
      message: Int(m), t: History.ms(w.t), type: w.type.rawValue, from: h.name(w.from),
      to: w.to == WireRecord.broadcast ? "*" : h.name(w.to), seq: w.seq >= 0 ? Int(w.seq) : nil,
      creditFrame: w.creditFrame, forged: forged, problem: problem, error: error.map { $0.code ?? $0.name },
      fates: fates, delayMs: delay > 0 ? History.ms(delay) : nil, deliveries: deliveries.count, deliveredTo: others,
      exhibit: h.exhibits[m])
  }

  static func eventRow(_ h: History, _ entry: Entry) -> Row? {
    let t = History.ms(entry.t)
    func row(_ s: History.Stream, _ type: String, at worker: KeyPath<StreamInfo, History.Worker>, note: String? = nil)
      -> Row?
    {
      guard s >= 0, Int(s) < h.streams.count else { return nil }
      let name = h.name(h.streams[Int(s)][keyPath: worker])
      return Row(message: nil, t: t, type: type, from: name, to: name, note: note)
    }
    switch entry.event {
    case .opened(let s): return row(s, "opened", at: \.consumer)
    case .openFailed(let s): return row(s, "open failed", at: \.consumer)
    case .handler(let s, let w):
      guard var r = row(s, "handler ran", at: \.producer) else { return nil }
      r.from = h.name(w)
      r.to = r.from
      return r
    case .finish(let s, let error, let result):
      return row(s, error ? "producer fails" : "producer ends", at: \.producer, note: "\(result)")
    case .emitAfterFinish(let s, let result): return row(s, "emit after finish", at: \.producer, note: "\(result)")
    case .cancel(let s, let accepted):
      return row(s, "cancelStream", at: \.consumer, note: accepted ? "accepted" : "refused")
    case .onEnd(let s, _): return row(s, "onEnd", at: \.consumer)
    case .onError(let s, let e):
      guard var r = row(s, "onError", at: \.consumer) else { return nil }
      if e >= 0, Int(e) < h.errors.count { r.error = h.errors[Int(e)].code ?? h.errors[Int(e)].name }
      return r
    case .crash(let w, let announced):
      let name = h.name(w)
      return Row(
        message: nil, t: t, type: "crash", from: name, to: name, note: announced ? "announced" : "silent")
    case .disconnected(let w):
      let name = h.name(w)
      return Row(message: nil, t: t, type: "disconnected", from: name, to: name, note: "relay connection cut")
    case .connected(let w):
      let name = h.name(w)
      return Row(message: nil, t: t, type: "connected", from: name, to: name, note: "at the relay")
    default: return nil
    }
  }
}
