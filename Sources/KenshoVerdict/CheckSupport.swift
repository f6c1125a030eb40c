import Foundation
import KenshoProtocol
public import KenshoScenario

// Helpers shared by the checks in Checks/: how a history is read (activity, forged
// deliveries, cancels, measurements), kept apart so that each check file holds one check.

extension StreamTimeline {
  /// Whether message `w`, delivered to the stream's consumer, refreshes the stream under
  /// KSP-3.3: a data chunk, `stream_end` or `stream_error` from the stream's producer,
  /// addressed to the consumer, that breaks no rule of KSP-1.1. Credit frames (sent the other
  /// way), misaddressed or malformed messages and messages from any other worker never do.
  static func refreshes(_ w: WireRecord, _ info: StreamInfo) -> Bool {
    w.problem < 0 && w.from == info.producer && (w.to == info.consumer || w.to == WireRecord.broadcast)
      && !w.creditFrame && (w.type == .streamChunk || w.type == .streamEnd || w.type == .streamError)
  }

  /// The stream's last activity under KSP-3.3, ns: its opening, or the latest message its
  /// consumer's bus accepted from its producer before the stream ended — a data chunk, or a
  /// `stream_end`/`stream_error` (held back while chunks are missing).
  func lastActivity(_ h: History, stream s: Int, before end: Int64) -> Int64 {
    let info = h.streams[s]
    var last = info.openedAt
    for d in deliveries where d.beforeTerminal && d.t <= end && d.to == info.consumer {
      if Self.refreshes(h.wire[Int(d.message)], info) { last = max(last, d.t) }
    }
    return last
  }

  /// The latest message about the stream that reached its consumer before `end` and that must
  /// not refresh it (KSP-3.3), with its time.
  func latestNonRefreshing(_ h: History, stream s: Int, before end: Int64) -> (message: Int32, t: Int64)? {
    let info = h.streams[s]
    var latest: (Int32, Int64)?
    for d in deliveries where d.beforeTerminal && d.t <= end && d.to == info.consumer {
      guard !Self.refreshes(h.wire[Int(d.message)], info) else { continue }
      if latest.map({ d.t >= $0.1 }) ?? true { latest = (d.message, d.t) }
    }
    return latest
  }
}

extension RunRecord {
  /// Every stream's emitter calls (chunks and finishes), each with its history index, in
  /// history order: one pass, so that a check asking per stream stays linear in the history.
  func emitCalls() -> EmitCalls {
    var byStream: [Int: [(event: Int, result: EmitResult, t: Int64)]] = [:]
    for (i, entry) in history.events.enumerated() {
      switch entry.event {
      case .emit(let st, _, _, let r): byStream[Int(st), default: []].append((i, r, entry.t))
      case .finish(let st, _, let r): byStream[Int(st), default: []].append((i, r, entry.t))
      default: break
      }
    }
    return EmitCalls(byStream: byStream)
  }
}

/// Emitter calls by stream, from ``RunRecord/emitCalls()``.
struct EmitCalls {
  let byStream: [Int: [(event: Int, result: EmitResult, t: Int64)]]

  /// Stream `s`'s emitter calls after history index `i`, in order.
  func after(stream s: Int, event i: Int) -> ArraySlice<(event: Int, result: EmitResult, t: Int64)> {
    guard let calls = byStream[s] else { return [] }
    var low = 0
    var high = calls.count
    while low < high {
      let mid = (low + high) / 2
      if calls[mid].event <= i { low = mid + 1 } else { high = mid }
    }
    return calls[low...]
  }
}

extension RunRecord {

  /// History indices of the deliveries of `stream_cancel` to a stream's producer, with whether
  /// the cancel came from the stream's consumer, while the producer had not finished.
  func cancelDeliveries() -> [(event: Int, stream: Int, message: Int32, fromConsumer: Bool, t: Int64)] {
    let h = history
    var finished = Set<Int>()
    var out: [(Int, Int, Int32, Bool, Int64)] = []
    for (i, entry) in h.events.enumerated() {
      switch entry.event {
      case .finish(let s, _, .ok): finished.insert(Int(s))
      case .delivered(let m, let to):
        let w = h.wire[Int(m)]
        guard w.type == .streamCancel, w.problem < 0, w.stream >= 0, !finished.contains(Int(w.stream)) else { continue }
        let info = h.streams[Int(w.stream)]
        guard to == info.producer else { continue }
        out.append((i, Int(w.stream), m, w.from == info.consumer, entry.t))
      default: break
      }
    }
    return out
  }
}

extension StreamTimeline {
  /// Payloads of the data chunks the consumer's bus accepted from the producer before the
  /// stream's first terminal callback: valid, addressed to the consumer, from the producer.
  func received(_ h: History, stream s: Int) -> [UInt64] {
    let info = h.streams[s]
    return deliveries.compactMap { d in
      let w = h.wire[Int(d.message)]
      guard d.beforeTerminal, d.to == info.consumer, w.type == .streamChunk, !w.creditFrame, w.problem < 0,
        w.from == info.producer, w.to == info.consumer || w.to == WireRecord.broadcast
      else { return nil }
      return w.payload
    }
  }
}

/// What the harness forged and delivered to a bus: the situation of KSP-1.2 and 1.3.
struct ForgedDeliveries {
  /// Deliveries of forged messages that break KSP-1.1, or that are addressed to someone else.
  static func find(_ h: History, misaddressed: Bool) -> [(message: Int32, to: History.Worker, t: Int64)] {
    var out: [(Int32, History.Worker, Int64)] = []
    for entry in h.events {
      guard case .delivered(let m, let to) = entry.event else { continue }
      let w = h.wire[Int(m)]
      guard w.isForged else { continue }
      let isMisaddressed = w.problem < 0 && w.to != to && w.to != WireRecord.broadcast
      let isMalformed = w.problem >= 0
      if misaddressed ? isMisaddressed : isMalformed { out.append((m, to, entry.t)) }
    }
    return out
  }
}

/// Whether a forged message reached a callback or disturbed its stream: a callback with the
/// forged payload, or the stream failing although its producer ended it.
func disturbance(_ run: RunRecord, forged: [(message: Int32, to: History.Worker, t: Int64)]) -> Counterexample? {
  let h = run.history
  let payloads = Set(forged.map { h.wire[Int($0.message)].payload })
  for (s, tl) in run.timelines.enumerated() {
    if let k = tl.chunks.firstIndex(where: { payloads.contains($0.payload) }),
      !tl.emitted.contains(where: { payloads.contains($0.payload) })
    {
      return run.counterexample(stream: s, at: tl.chunks[k].t, "onChunk ran with the payload of a forged message")
    }
  }
  for f in forged {
    let s = h.wire[Int(f.message)].stream
    guard s >= 0, Int(s) < run.timelines.count else { continue }
    let tl = run.timelines[Int(s)]
    if let finish = tl.finish, !finish.error, finish.result == .ok, tl.transportKeptOrder(h),
      case .error? = tl.terminal?.0
    {
      return run.counterexample(
        stream: Int(s), message: f.message, at: tl.terminal?.t,
        "failed with \(tl.terminal?.0.describe(h) ?? "") after the forged \(h.describe(f.message)), though its producer ended it"
      )
    }
  }
  return nil
}

func memoryUnmeasured(_ run: RunRecord) -> String {
  run.has(.memory) ? "memory was not measured (measurement off, or a reading failed)" : "memory is not measured"
}

/// "; noise floor 4096 B" when readings at rest spread (the bound is widened by that much).
func floorNote(_ floor: Int) -> String { floor > 0 ? "; noise floor \(floor) B" : "" }

extension Metrics {
  /// The value of a scenario metric, when this run measured it.
  public func value(of metric: Metric) -> Double? {
    switch metric {
    case .latencyP50Us: chunkLatency?.p50
    case .latencyP90Us: chunkLatency?.p90
    case .latencyP99Us: chunkLatency?.p99
    case .latencyP999Us: chunkLatency?.p999
    case .latencyMaxUs: chunkLatency?.max
    case .correctedLatencyP99Us: chunkLatencyCorrected?.p99
    case .chunksPerSecond: wallSeconds > 0 ? chunksPerSecond : nil
    case .bytesPerSecond: wallSeconds > 0 ? bytesPerSecond : nil
    case .retainedBytes: retainedBytes.map(Double.init)
    case .peakBytes: peakBytes.map(Double.init)
    case .chunksDelivered: Double(chunksDelivered)
    case .streamsCompleted: Double(streamsCompleted)
    case .maxInboxDepth: maxInboxDepth.map(Double.init)
    }
  }
}
