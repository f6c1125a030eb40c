import Foundation
import KenshoProtocol
import KenshoRelay
import KenshoVerdict
import NIOCore
import Synchronization

/// The scenario's faults at the embedded relay (drop, delay, duplicate), decided by the same
/// ``FaultInjector`` as on the harness's network and recorded in the history the same way, so
/// that the checks judge a faulted relay run as they judge a faulted in-process run.
///
/// Each frame that is a message is decided once, as it arrives; the decision applies to the
/// connection of the worker it is addressed to (to every receiver for a broadcast). Other
/// receivers drop it anyway (KSP-1.3), and frames that are not messages pass untouched.
final class RelayFaults: RelayPolicy, Sendable {
  private let injector: FaultInjector
  private let tags: RelayNetwork.TagTable
  /// The frame being routed (the relay's event loop routes one frame at a time).
  private let current = Mutex<(message: KenshoMessage, tag: Int32?, decision: FaultInjector.Decision)?>(nil)

  init(injector: FaultInjector, tags: RelayNetwork.TagTable) {
    self.injector = injector
    self.tags = tags
  }

  func received(from: String, text: Bool, bytes: ByteBuffer) {
    guard text, case .success(let json) = KenshoCodec.parse(Data(bytes.readableBytesView)),
      case .success(let message) = KenshoCodec.message(from: json, mode: .received)
    else {
      current.withLock { $0 = nil }
      return
    }
    let decision = injector.decide(message, now: injector.now)
    // Forgeries act on the harness's network only (the loader refuses them here).
    let tag = tags.table.withLock { $0[message.messageId] }
    current.withLock { $0 = (message, tag, decision) }
  }

  func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute {
    guard let (message, tag, decision) = current.withLock({ $0 }),
      message.targetWorker == to || message.targetWorker == KenshoMessage.broadcastTarget
    else { return .deliver }
    let recorder = injector.recorder
    let now = injector.now
    func note(_ fate: FaultDecision) {
      if let tag, tag >= 0 { recorder?.record(.fault(tag, fate), at: now) }
    }
    if decision.drop {
      note(decision.partitioned ? .cutOff : .dropped)
      return .drop
    }
    // The relay applies one decision per frame and receiver: a delay, else one copy.
    if decision.delay > 0 {
      note(.delayed(decision.delay))
      return .delay(nanoseconds: decision.delay)
    }
    if decision.copies > 0 {
      note(.duplicated)
      return .duplicate
    }
    return .deliver
  }
}
