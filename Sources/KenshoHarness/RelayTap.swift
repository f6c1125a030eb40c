import Foundation
import KenshoBus
import KenshoProtocol
import KenshoRelay
import KenshoVerdict
import NIOCore
import Synchronization

/// An adapter's wire, seen at the embedded relay (the implementation's buses hold their own
/// connections, so no `send` event shows it): every frame a connection sends is a message sent
/// by its bus, recorded as the harness's network records one (KSP-1.1 judges it); every forward
/// of a message to the connection of the worker it is addressed to (or of a broadcast) is a
/// delivery there. The scenario's faults act first (``RelayFaults``), and what they drop is no
/// delivery.
///
/// Connections are known by their `worker` query item (`ws://HOST:PORT/?worker=NAME`), which
/// relay mode asks every adapter to give (docs/ADAPTER-PROTOCOL.md).
final class RelayTap: RelayPolicy, Sendable {
  private let sent: SendTap
  private let workers: Set<String>
  private let faults: RelayFaults?
  private let tags: RelayNetwork.TagTable
  /// The frame being routed (the relay's event loop routes one frame at a time).
  private let current = Mutex<(message: KenshoMessage, tag: Int32)?>(nil)
  /// Messages routed to a worker and not yet written or dropped there, with the writes to come.
  private let routed = Mutex<[Routed: (tag: Int32, receiver: Int32, writes: Int)]>([:])
  private struct Routed: Hashable {
    var frame: Int
    var to: String
  }

  init(sent: SendTap, workers: Set<String>, faults: RelayFaults?, tags: RelayNetwork.TagTable) {
    self.sent = sent
    self.workers = workers
    self.faults = faults
    self.tags = tags
  }

  func received(from: String, text: Bool, bytes: ByteBuffer) {
    current.withLock { $0 = nil }
    // Frames of the harness's own probe come after the workload, from unnamed connections.
    if workers.contains(from) {
      if !text {
        sent.recorder.undecodable(from: from, problem: "a binary frame, not a message", at: sent.clock.nanoseconds())
      } else if !bytes.readableBytesView.elementsEqual("ping".utf8) {
        switch KenshoCodec.decode(Data(bytes.readableBytesView), mode: .received) {
        case .success(let m):
          if m.sourceWorker != from {
            // What went on the wire is recorded as it went; the lie is a KSP-1.1 problem.
            sent.recorder.undecodable(
              from: from,
              problem: "a message with sourceWorker \(AdapterHost.brief(m.sourceWorker)) on the connection of \(from)",
              at: sent.clock.nanoseconds())
          }
          let tag = sent(m)
          tags.table.withLock { $0[m.messageId] = tag }
          current.withLock { $0 = (m, tag) }
        case .failure(let rejection):
          sent.recorder.undecodable(from: from, problem: "\(rejection)", at: sent.clock.nanoseconds())
        }
      }
    }
    faults?.received(from: from, text: text, bytes: bytes)
  }

  func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute {
    let route = faults?.route(from: from, to: to, text: text, bytes: bytes, frame: frame) ?? .deliver
    guard let (message, tag) = current.withLock({ $0 }), workers.contains(to),
      message.targetWorker == to || message.targetWorker == KenshoMessage.broadcastTarget
    else { return route }
    let writes =
      switch route {
      case .deliver, .delay: 1
      case .duplicate: 2
      case .drop: 0
      }
    // A delivery once the relay has written it: it may yet drop it for a receiver that does not
    // read (KSP-11.6), or find it gone when a delayed frame is due.
    if writes > 0 {
      let receiver = sent.recorder.workerId(to)
      routed.withLock { $0[Routed(frame: frame, to: to)] = (tag, receiver, writes) }
    }
    return route
  }

  func outcome(frame: Int, to: String, written: Bool) {
    let key = Routed(frame: frame, to: to)
    let entry: (tag: Int32, receiver: Int32, writes: Int)? = routed.withLock { table in
      guard var entry = table[key] else { return nil }
      entry.writes -= 1
      table[key] = entry.writes > 0 ? entry : nil
      return entry
    }
    guard let entry else { return }
    let now = sent.clock.nanoseconds()
    sent.recorder.record(written ? .delivered(entry.tag, to: entry.receiver) : .fault(entry.tag, .dropped), at: now)
  }
}

/// What the harness does with a message a bus sent, wherever it saw it (its own network, or the
/// embedded relay): records it in the history, counts it by type, and in real time through
/// adapters stamps a chunk's send on the harness's clock (its latency counts from there).
struct SendTap: Sendable {
  let recorder: HistoryRecorder
  let state: RunStateBox
  let clock: any BusClock
  let stampsSends: Bool

  func callAsFunction(_ m: KenshoMessage) -> Int32 {
    let tag = recorder.sent(m, origin: .bus, at: clock.nanoseconds())
    state.withLock { s in
      s.wire[m.type, default: 0] += 1
      if stampsSends && m.type == .streamChunk, let id = m.streamId, let i = s.streamIndex[id] {
        s.records[i].stampSend(at: SystemClock.shared.nanoseconds())
      }
    }
    return tag
  }
}
