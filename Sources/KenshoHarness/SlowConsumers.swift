import DequeModule
import KenshoBus
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// Slow consumers: each message to an agent with `processingMs` waits in that agent's inbox and
/// is handed to its bus one at a time, `processingMs` of scenario time apart. What piles up in
/// an inbox is what a bus without flow control buffers behind slow callbacks.
final class SlowConsumers: Sendable {
  private struct Inbox {
    var queue = Deque<(KenshoMessage, Int32)>()
    var busy = false
    var maxDepth = 0
  }

  private let processingNanos: [String: Int64]
  private let clock: any BusClock
  private let inboxes = Mutex<[String: Inbox]>([:])
  private let network = Mutex<LocalNetwork?>(nil)
  private let recorderBox = Mutex<HistoryRecorder?>(nil)
  var recorder: HistoryRecorder? {
    get { recorderBox.withLock { $0 } }
    set { recorderBox.withLock { $0 = newValue } }
  }

  init(scenario: Scenario, clock: any BusClock) {
    var delays: [String: Int64] = [:]
    for agent in scenario.agents where agent.processingMs > 0 {
      for worker in agent.workerNames { delays[worker] = Nanos.from(ms: agent.processingMs) }
    }
    processingNanos = delays
    self.clock = clock
  }

  var isEmpty: Bool { processingNanos.isEmpty }

  func attach(_ network: LocalNetwork) { self.network.withLock { $0 = network } }

  /// The most messages that waited in one inbox at once, by worker.
  var maxDepths: [String: Int] { inboxes.withLock { $0.mapValues(\.maxDepth) } }

  /// Takes `m` into its target's inbox when the target is slow; returns whether it did.
  func intercept(_ m: KenshoMessage, tag: Int32) -> Bool {
    guard processingNanos[m.targetWorker] != nil else { return false }
    recorder?.record(.fault(tag, .queued), at: clock.nanoseconds())
    let start: Bool = inboxes.withLock { all in
      var inbox = all[m.targetWorker] ?? Inbox()
      inbox.queue.append((m, tag))
      inbox.maxDepth = max(inbox.maxDepth, inbox.queue.count)
      let start = !inbox.busy
      inbox.busy = true
      all[m.targetWorker] = inbox
      return start
    }
    if start { scheduleNext(m.targetWorker, at: clock.nanoseconds()) }
    return true
  }

  private func scheduleNext(_ worker: String, at time: Int64) {
    _ = clock.schedule(at: time) { [self] in
      let next: (KenshoMessage, Int32)? = inboxes.withLock { all in
        guard let m = all[worker]?.queue.popFirst() else {
          all[worker]?.busy = false
          return nil
        }
        return m
      }
      guard let next, let network = network.withLock({ $0 }) else { return }
      network.route(next.0, bypassingTap: true, tag: next.1)
      scheduleNext(worker, at: clock.nanoseconds() &+ (processingNanos[worker] ?? 0))
    }
  }
}
