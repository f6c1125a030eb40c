import KenshoProtocol

extension RunRecord {
  /// Emitter calls for stream `s` after scenario time `t` (exclusive) and after history index `i`.
  func emitResults(stream s: Int, afterEvent i: Int) -> [(result: EmitResult, t: Int64)] {
    var out: [(EmitResult, Int64)] = []
    for entry in history.events[(i + 1)...] {
      switch entry.event {
      case .emit(let st, _, _, let r) where Int(st) == s: out.append((r, entry.t))
      case .finish(let st, _, let r) where Int(st) == s: out.append((r, entry.t))
      default: break
      }
    }
    return out
  }

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

/// KSP-7.2: once the consumer's `stream_cancel` reaches the producer, its emitter is inactive:
/// later chunks and the end send nothing. Untested unless a cancel arrived mid-stream.
public struct CancelStopsProducer: Check {
  public let rule = "KSP-7.2"
  public let expected = "after stream_cancel arrives, the producer's emits are refused"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let cancels = run.cancelDeliveries().filter(\.fromConsumer)
    guard !cancels.isEmpty else { return .untested("no consumer's stream_cancel reached an active producer") }
    for c in cancels {
      if let accepted = run.emitResults(stream: c.stream, afterEvent: c.event).first(where: { $0.result == .ok }) {
        return .fail(
          observed: "\(cancels.count) cancels delivered",
          run.counterexample(
            stream: c.stream, message: c.message, at: accepted.t,
            "the emitter still accepted a chunk or end after stream_cancel arrived"))
      }
    }
    return .pass(observed: "\(cancels.count) cancels stopped their producers")
  }
}

/// KSP-7.3: a `stream_cancel` from anyone but the stream's consumer is ignored. Untested unless
/// the harness delivered such a cancel (fault `forge: cancel`) to an active producer.
public struct ForeignCancelIgnored: Check {
  public let rule = "KSP-7.3"
  public let expected = "a stream_cancel from another worker is ignored"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let all = run.cancelDeliveries()
    let foreign = all.filter { !$0.fromConsumer }
    guard !foreign.isEmpty else { return .untested("no foreign stream_cancel reached an active producer") }
    let genuine = Set(all.filter(\.fromConsumer).map(\.stream))
    for c in foreign where !genuine.contains(c.stream) {
      // Refused as cancelled, or as closed (an adapter may forget a cancelled emitter at once):
      // the producer had not finished, so only the cancel can have stopped it.
      let stopped = run.emitResults(stream: c.stream, afterEvent: c.event).first {
        $0.result == .cancelled || $0.result == .closed
      }
      if let refused = stopped {
        return .fail(
          observed: "\(foreign.count) foreign cancels delivered",
          run.counterexample(
            stream: c.stream, message: c.message, at: refused.t,
            "the producer took a cancel from \(run.history.describe(c.message))"))
      }
    }
    return .pass(observed: "\(foreign.count) foreign cancels ignored")
  }
}
