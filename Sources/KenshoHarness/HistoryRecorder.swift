import KenshoBus
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// Writes a run's ``History`` as it happens: the wire recorder, the operation log and the
/// callback log in one place, behind one lock.
///
/// It keeps no payloads, only fingerprints, and meters its own memory (each growth of its
/// tables is measured with the run's allocator counters) so that the memory checks can take
/// it out of what they blame on the bus.
final class HistoryRecorder: Sendable {
  private struct State {
    var h = History()
    var ids: [String: Int32] = [:]
    var streamById: [String: Int32] = [:]
    var bytes: Int64 = 0
    /// The last names and stream ids looked up: most messages repeat their neighbours', and
    /// comparing a short string costs less than hashing it.
    var recentWorkers: [(name: String, id: Int32)] = []
    var nextRecent = 0
    var recentStream: (id: String, index: Int32)?
    /// Messages of a stream id no stream had yet when they were sent, by that id: on a relay an
    /// adapter's stream_request can reach the harness before the `call` that opened it returns.
    /// They join their stream when it opens. Bounded (``orphanLimit``).
    var orphans: [String: [(tag: Int32, traceId: String?)]] = [:]
    var orphanCount = 0

    mutating func stream(_ id: String) -> Int32? {
      if let r = recentStream, r.id == id { return r.index }
      guard let index = streamById[id] else { return nil }
      recentStream = (id, index)
      return index
    }
  }

  private let state: Mutex<State>
  private let meter: @Sendable () -> Int64?

  init(scenario: Scenario, totalStreams: Int, sweepInterval: Int64, meter: @escaping @Sendable () -> Int64?) {
    self.meter = meter
    var s = State()
    for agent in scenario.agents {
      for worker in agent.workerNames where s.ids[worker] == nil {
        s.ids[worker] = Int32(s.h.workers.count)
        s.h.workers.append(worker)
      }
    }
    s.h.scenarioWorkers = s.h.workers.count
    s.h.sweepInterval = sweepInterval
    if scenario.time.mode == .real { s.h.observationSlack = Self.realTimeSlack }
    s.h.streams.reserveCapacity(totalStreams)
    s.streamById.reserveCapacity(totalStreams)
    state = Mutex(s)
  }

  /// In real time, how much later the harness may see what an implementation did (through
  /// pipes or sockets, timers and threads scheduled late on a loaded machine): 50 ms.
  static let realTimeSlack: Int64 = 50_000_000

  /// Bytes the history itself holds (taken out of the memory measured for the bus).
  var bytes: Int64 { state.withLock { $0.bytes } }

  /// Runs `grow` (a table's reallocation) and counts what it allocated.
  private static func metered(_ s: inout State, _ meter: () -> Int64?, _ grow: (inout State) -> Void) {
    let before = meter()
    grow(&s)
    if let before, let after = meter() { s.bytes += after - before }
  }

  private func worker(_ s: inout State, _ name: String) -> Int32 {
    for r in s.recentWorkers where r.name == name { return r.id }
    if let id = s.ids[name] {
      // The recorder's own copy of the name, not the message's.
      let own = s.h.workers[Int(id)]
      if s.recentWorkers.count < 4 {
        s.recentWorkers.append((own, id))
      } else {
        s.recentWorkers[s.nextRecent] = (own, id)
        s.nextRecent = (s.nextRecent + 1) % 4
      }
      return id
    }
    let id = Int32(truncatingIfNeeded: s.h.workers.count)
    Self.metered(&s, meter) { s in
      let copy = name.freshCopy
      s.h.workers.append(copy)
      s.ids[copy] = id
    }
    return id
  }

  func workerId(_ name: String) -> Int32 { state.withLock { worker(&$0, name) } }

  private func append(_ s: inout State, _ entry: Entry) {
    if s.h.events.count == s.h.events.capacity {
      Self.metered(&s, meter) { $0.h.events.reserveCapacity(Swift.max(4096, $0.h.events.capacity * 2)) }
    }
    s.h.events.append(entry)
  }

  func record(_ event: Event, at t: Int64) { state.withLock { append(&$0, Entry(t: t, event: event)) } }

  /// Records an operation when it starts (so that what it causes comes after it in the
  /// history) and returns where, so that its result can be set when it returns.
  func begin(_ event: Event, at t: Int64) -> Int {
    state.withLock { s in
      append(&s, Entry(t: t, event: event))
      return s.h.events.count - 1
    }
  }

  /// Sets the result of an emitter call recorded by ``begin(_:at:)``.
  func settle(_ index: Int, _ result: EmitResult) {
    state.withLock { s in
      guard index >= 0, index < s.h.events.count else { return }
      switch s.h.events[index].event {
      case .emit(let st, let i, let p, _): s.h.events[index].event = .emit(st, index: i, payload: p, result: result)
      case .finish(let st, let e, _): s.h.events[index].event = .finish(st, error: e, result: result)
      case .emitAfterFinish(let st, _): s.h.events[index].event = .emitAfterFinish(st, result: result)
      default: break
      }
    }
  }

  /// A stream the harness is about to open; returns its index.
  func addStream(_ info: StreamInfo) -> Int32 {
    state.withLock { s in
      let index = Int32(truncatingIfNeeded: s.h.streams.count)
      if s.h.streams.count == s.h.streams.capacity {
        Self.metered(&s, meter) { $0.h.streams.reserveCapacity(Swift.max(64, $0.h.streams.capacity * 2)) }
      }
      s.h.streams.append(info)
      return index
    }
  }

  func streamIndex(_ streamId: String) -> Int32? { state.withLock { $0.stream(streamId) } }

  /// `callAgentStream` returned `streamId` for stream `index`.
  func opened(_ index: Int32, streamId: String, traceId: String?, at t: Int64) {
    state.withLock { s in
      s.h.streams[Int(index)].streamId = streamId
      s.h.streams[Int(index)].traceId = traceId
      if s.streamById.count == s.streamById.capacity {
        Self.metered(&s, meter) { $0.streamById.reserveCapacity(Swift.max(64, $0.streamById.capacity * 2)) }
      }
      // A reused id keeps its first stream; StreamRequests reports the reuse.
      if s.streamById[streamId] == nil {
        s.streamById[streamId] = index
        for orphan in s.orphans.removeValue(forKey: streamId) ?? [] {
          s.orphanCount -= 1
          s.h.wire[Int(orphan.tag)].stream = index
          if let traceId { s.h.wire[Int(orphan.tag)].traceOK = orphan.traceId == traceId }
        }
      }
      append(&s, Entry(t: t, event: .opened(index)))
    }
  }

  func setStreamDue(_ index: Int32, openedAt: Int64, dueAt: Int64) {
    state.withLock { s in
      s.h.streams[Int(index)].openedAt = openedAt
      s.h.streams[Int(index)].dueAt = dueAt
    }
  }

  /// A message put on the wire by a bus (or forged by the harness); returns its tag.
  func sent(_ m: KenshoMessage, origin: WireRecord.Origin, at t: Int64) -> Int32 {
    let problem = m.validate(.sent)
    let payload = m.payload.ijsonFingerprint
    let messageId = m.messageId.ijsonFingerprintOfString
    // A credit frame (KSP-FC, docs/FLOW-CONTROL.md) is known by `metadata.creditLimit`.
    let credit = m.type == .streamChunk && m.metadata?.other["creditLimit"] != nil
    return state.withLock { s in
      let from = worker(&s, m.sourceWorker)
      let to = m.targetWorker == KenshoMessage.broadcastTarget ? WireRecord.broadcast : worker(&s, m.targetWorker)
      let stream = m.streamId.flatMap { s.stream($0) } ?? WireRecord.none
      var problemIndex = WireRecord.none
      if let problem {
        problemIndex = Int32(truncatingIfNeeded: s.h.problems.count)
        if s.h.problems.count < 10_000 {
          Self.metered(&s, meter) { $0.h.problems.append("\(problem)") }
        } else {
          problemIndex = 9_999
        }
      }
      var errorIndex = WireRecord.none
      if let e = m.error {
        errorIndex = Int32(truncatingIfNeeded: s.h.errors.count)
        Self.metered(&s, meter) { $0.h.errors.append(e.freshCopy) }
      }
      var traceOK: Bool?
      if stream >= 0, let expected = s.h.streams[Int(stream)].traceId { traceOK = m.traceId == expected }
      let record = WireRecord(
        type: m.type, from: from, to: to, stream: stream, seq: m.seq.map { Int32(clamping: $0) } ?? -1,
        payload: payload, problem: problemIndex, error: errorIndex, messageId: messageId, traceOK: traceOK,
        creditFrame: credit, origin: origin, t: t)
      let tag = Int32(truncatingIfNeeded: s.h.wire.count)
      if s.h.wire.count == s.h.wire.capacity {
        Self.metered(&s, meter) { $0.h.wire.reserveCapacity(Swift.max(4096, $0.h.wire.capacity * 2)) }
      }
      s.h.wire.append(record)
      if stream == WireRecord.none, let id = m.streamId, s.orphanCount < Self.orphanLimit {
        s.orphans[id, default: []].append((tag, m.traceId))
        s.orphanCount += 1
      }
      if problem != nil || record.isForged || (0..<4).contains(stream), s.h.exhibits.count < History.exhibitLimit {
        Self.metered(&s, meter) {
          $0.h.exhibits[tag] =
            (try? KenshoCodec.encode(m)).map { String(decoding: $0.prefix(400), as: UTF8.self) } ?? "\(m.type)"
        }
      }
      append(&s, Entry(t: t, event: .sent(tag)))
      return tag
    }
  }

  /// The most messages kept waiting for a stream id to open (``State/orphans``).
  static let orphanLimit = 100_000

  /// Something an implementation sent that is not a KenshoMessage at all.
  func undecodable(from name: String, problem: String, at t: Int64) {
    state.withLock { s in
      let from = worker(&s, name)
      if s.h.undecodable.count < 1_000 { s.h.undecodable.append((from, problem, t)) }
    }
  }

  /// An error a callback received; returns its index.
  func error(_ e: SerializedError) -> Int32 {
    state.withLock { s in
      let index = Int32(truncatingIfNeeded: s.h.errors.count)
      Self.metered(&s, meter) { $0.h.errors.append(e.freshCopy) }
      return index
    }
  }

  func finish(
    stats: [String: StatsReading], capabilities: Set<Capability>, endedAt: Int64, complete: Bool,
    digests: [Int: (sent: String, received: String)]
  ) -> History {
    state.withLock { s in
      for (name, reading) in stats { s.h.finalStats[worker(&s, name)] = reading }
      s.h.capabilities = capabilities
      s.h.endedAt = endedAt
      s.h.complete = complete
      s.h.digests = digests
      return s.h
    }
  }
}

extension SerializedError {
  /// A copy that shares no storage with the message it came from, so that keeping it in the
  /// history allocates (and is metered) instead of keeping the message's strings alive.
  var freshCopy: SerializedError {
    SerializedError(name: name.freshCopy, message: message.freshCopy, code: code?.freshCopy, stack: stack?.freshCopy)
  }
}

extension String {
  var freshCopy: String { String(decoding: Array(utf8), as: UTF8.self) }

  /// A 64-bit fingerprint of the string's bytes (for message ids).
  var ijsonFingerprintOfString: UInt64 {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in utf8 {
      value ^= UInt64(byte)
      value = value &* 0x100_0000_01b3
    }
    return value
  }
}
