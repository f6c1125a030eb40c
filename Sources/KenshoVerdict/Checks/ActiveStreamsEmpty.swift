import KenshoProtocol

/// KSP-9.1: when every stream is terminal, no bus holds an `activeStreams` entry or a producer
/// emitter. Statistics a bus could not give are an error, never zeros.
public struct ActiveStreamsEmpty: Check {
  public let rule = "KSP-9.1"
  public let expected = "no activeStreams entry and no emitter left on any bus"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    let h = run.history
    guard run.has(.stats) else { return .unsupported("the implementation does not report its statistics (stats)") }
    guard !run.timelines.isEmpty else { return .untested("no stream was opened") }
    guard h.complete else { return .untested("the run stopped before every stream was terminal") }
    var left: [String] = []
    for (w, reading) in h.finalStats.sorted(by: { $0.key < $1.key }) {
      switch reading {
      case .crashed: continue
      case .failed(let why): return .error("\(h.name(w)) could not report its statistics: \(why)")
      case .read(let active, let emitters):
        if active > 0 { left.append("\(h.name(w)): \(active) activeStreams entries") }
        if emitters > 0 { left.append("\(h.name(w)): \(emitters) producer emitters") }
      }
    }
    if h.finalStats.isEmpty { return .error("no bus reported its statistics") }
    if left.isEmpty { return .pass(observed: "all empty on \(h.finalStats.count) buses") }
    return .fail(observed: left.joined(separator: "; "), Counterexample(atMs: History.ms(h.endedAt), text: left[0]))
  }
}
