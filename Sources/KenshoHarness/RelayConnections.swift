import KenshoBus
import KenshoRelay
import KenshoVerdict
import NIOCore

/// The connections of the scenario's workers at the embedded relay, in the history: each
/// admission of a connection labelled with a worker's name is a `connected` event (a worker
/// joining, or coming back after a `disconnect` action cut it off). Frames go to the policy it
/// wraps (the tap of an adapter's wire, the scenario's faults), unchanged.
final class RelayConnections: RelayPolicy, Sendable {
  private let inner: (any RelayPolicy)?
  private let workers: Set<String>
  private let recorder: HistoryRecorder
  private let clock: any BusClock

  init(wrapping inner: (any RelayPolicy)?, workers: Set<String>, recorder: HistoryRecorder, clock: any BusClock) {
    self.inner = inner
    self.workers = workers
    self.recorder = recorder
    self.clock = clock
  }

  func admitted(_ label: String) {
    guard workers.contains(label) else { return }
    recorder.record(.connected(recorder.workerId(label)), at: clock.nanoseconds())
  }

  func received(from: String, text: Bool, bytes: ByteBuffer) {
    inner?.received(from: from, text: text, bytes: bytes)
  }

  func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute {
    inner?.route(from: from, to: to, text: text, bytes: bytes, frame: frame) ?? .deliver
  }

  func outcome(frame: Int, to: String, written: Bool) {
    inner?.outcome(frame: frame, to: to, written: written)
  }
}
