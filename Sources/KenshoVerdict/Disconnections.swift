/// A relay connection the harness cut (a scenario's `disconnect` action), and when the worker
/// was back: the situation `disconnect_recovery` and `reconnect` judge.
public struct Disconnection: Sendable, Hashable {
  public var worker: History.Worker
  /// When the harness cut the connection, ns of scenario time.
  public var at: Int64
  /// When a connection labelled with the worker was admitted again, if it was.
  public var back: Int64?

  public init(worker: History.Worker, at: Int64, back: Int64?) {
    self.worker = worker
    self.at = at
    self.back = back
  }

  /// Every cut in the history, in order, each with the first admission of its worker after it.
  static func all(in h: History) -> [Disconnection] {
    var out: [Disconnection] = []
    var waiting: [History.Worker: [Int]] = [:]
    for entry in h.events {
      switch entry.event {
      case .disconnected(let w):
        waiting[w, default: []].append(out.count)
        out.append(Disconnection(worker: w, at: entry.t, back: nil))
      case .connected(let w):
        for i in waiting[w] ?? [] { out[i].back = entry.t }
        waiting[w] = nil
      default: continue
      }
    }
    return out
  }

  /// Marks each stream opened while its consumer or producer was cut off, or open when it was:
  /// what it sent or was sent in that window may be lost, as on a transport that does not keep
  /// order.
  static func mark(_ timelines: inout [StreamTimeline], _ h: History, _ cuts: [Disconnection]) {
    guard !cuts.isEmpty else { return }
    for s in timelines.indices where timelines[s].opened && s < h.streams.count {
      let info = h.streams[s]
      let ended = timelines[s].terminal?.t ?? .max
      func overlaps(_ d: Disconnection) -> Bool { info.openedAt <= (d.back ?? .max) && ended >= d.at }
      timelines[s].cutOff = cuts.firstIndex { d in
        (d.worker == info.consumer || d.worker == info.producer) && overlaps(d)
      }
      timelines[s].producerCut = cuts.contains { $0.worker == info.producer && overlaps($0) }
      timelines[s].consumerCut = cuts.contains { $0.worker == info.consumer && overlaps($0) }
    }
  }
}
