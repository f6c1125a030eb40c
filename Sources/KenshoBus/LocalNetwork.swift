public import KenshoProtocol
import Synchronization

/// The in-process FIFO transport: one queue for all workers of a process, delivered in the
/// order sent, without encoding (messages stay Swift values).
///
/// Delivery runs on the sending thread unless another thread is already delivering, in which
/// case that thread picks the message up; a callback that sends never re-enters delivery, so
/// the order of the queue is the order of delivery.
///
/// A ``Tap`` sees each message before delivery and may deliver, drop or hold it: the harness
/// uses it to observe and fault the network.
public final class LocalNetwork: Sendable {
  /// What a tap decided about a message.
  public enum Verdict: Sendable {
    case deliver
    case drop
  }

  /// Sees every message before it is routed.
  public typealias Tap = @Sendable (KenshoMessage) -> Verdict

  private struct State {
    var routes: [String: any TransportReceiver] = [:] {
      didSet { lastRoute = nil }
    }
    /// The last unicast route resolved: consecutive messages mostly go to the same worker.
    var lastRoute: (name: String, receiver: any TransportReceiver)?
    var endpoints: [String: Endpoint] = [:]
    var queue = FIFO<KenshoMessage>()
    var delivering = false
    var undeliverable = 0

    mutating func resolve(_ message: KenshoMessage) -> Route {
      let target = message.targetWorker
      if let last = lastRoute, last.name == target { return .one(last.name, last.receiver) }
      if target == KenshoMessage.broadcastTarget {
        return .many(routes.filter { $0.key != message.sourceWorker }.map { ($0.key, $0.value) })
      }
      guard let receiver = routes[target] else {
        undeliverable += 1
        return .none
      }
      lastRoute = (target, receiver)
      return .one(target, receiver)
    }
  }

  private enum Route {
    case one(String, any TransportReceiver)
    case many([(String, any TransportReceiver)])
    case none
  }

  /// Like ``Tap``, and names the message with a tag that ``arrival`` receives with it: how a
  /// harness links each delivery to the record it made when the message was sent.
  public typealias TaggingTap = @Sendable (KenshoMessage) -> (Verdict, tag: Int32)
  /// Sees a message as it is handed to a receiver, with its tag and the receiver's name.
  public typealias Arrival = @Sendable (KenshoMessage, _ tag: Int32, _ receiver: String) -> Void

  private let state = Mutex(State())
  private let tap: TaggingTap?
  private let arrival: Arrival?

  /// `tap` sees each message as it is sent.
  public init(tap: Tap? = nil) {
    if let tap {
      self.tap = { m in (tap(m), -1) }
    } else {
      self.tap = nil
    }
    self.arrival = nil
  }

  /// `tap` sees each message as it is sent and tags it; `arrival` sees each message as it is
  /// handed to each receiver (after the tap, and again for a message released late).
  public init(tap: @escaping TaggingTap, arrival: @escaping Arrival) {
    self.tap = tap
    self.arrival = arrival
  }

  /// A transport for the worker `name` on this network.
  public func endpoint(_ name: String) -> any Transport {
    let endpoint = Endpoint(network: self, name: name)
    state.withLock { $0.endpoints[name] = endpoint }
    return endpoint
  }

  /// Number of messages addressed to a worker that was not connected.
  public var undeliverableCount: Int { state.withLock { $0.undeliverable } }

  /// Names of the connected workers.
  public var workers: [String] { state.withLock { Array($0.routes.keys) } }

  /// Tells every other connected worker that `worker` is gone, and disconnects it (KSP-8.1).
  public func reportDown(_ worker: String) {
    let others = state.withLock { s in
      s.routes.removeValue(forKey: worker)
      s.endpoints.removeValue(forKey: worker)?.sever()
      return Array(s.routes.values)
    }
    for receiver in others { receiver.peerDown(worker) }
  }

  /// Cuts `worker` off silently, as a crash that nobody reports: nothing reaches it, and
  /// nothing it sends goes anywhere.
  public func disconnect(_ worker: String) {
    state.withLock { s in
      s.routes.removeValue(forKey: worker)
      s.endpoints.removeValue(forKey: worker)?.sever()
    }
  }

  /// Queues `message` and, unless a delivery loop already runs, delivers until the queue is empty.
  public func send(_ message: KenshoMessage) {
    let route: Route? = state.withLock { s in
      if s.delivering || !s.queue.isEmpty {
        s.queue.append(message)
        return nil
      }
      s.delivering = true
      return s.resolve(message)
    }
    guard let route else { return }
    deliver(message, route)
    while let (next, route) = nextQueued() { deliver(next, route) }
  }

  private func nextQueued() -> (KenshoMessage, Route)? {
    state.withLock { s in
      if let m = s.queue.popFirst() { return (m, s.resolve(m)) }
      s.delivering = false
      return nil
    }
  }

  /// Hands a message to its receivers now, bypassing the queue, and the tap when asked (for a
  /// harness that releases a message it held back).
  public func route(_ message: KenshoMessage, bypassingTap: Bool = false, tag: Int32 = -1) {
    let route = state.withLock { $0.resolve(message) }
    deliver(message, route, bypassingTap: bypassingTap, tag: tag)
  }

  /// Hands a message to `worker`, whatever its `targetWorker` says (for a harness that forges
  /// misaddressed messages), bypassing the queue and the tap.
  public func route(_ message: KenshoMessage, to worker: String, tag: Int32 = -1) {
    guard let receiver = state.withLock({ $0.routes[worker] }) else { return }
    arrival?(message, tag, worker)
    receiver.receive(message)
  }

  @inline(__always)
  private func deliver(_ message: KenshoMessage, _ route: Route, bypassingTap: Bool = false, tag: Int32 = -1) {
    var tag = tag
    if !bypassingTap, let tap {
      let (verdict, t) = tap(message)
      if verdict == .drop { return }
      tag = t
    }
    switch route {
    case .one(let name, let receiver):
      arrival?(message, tag, name)
      receiver.receive(message)
    case .many(let receivers):
      for (name, r) in receivers {
        arrival?(message, tag, name)
        r.receive(message)
      }
    case .none: break
    }
  }

  fileprivate func connect(_ name: String, _ receiver: any TransportReceiver) {
    state.withLock { $0.routes[name] = receiver }
  }

  fileprivate func close(_ name: String) {
    _ = state.withLock { $0.routes.removeValue(forKey: name) }
  }
}

final class Endpoint: Transport {
  let network: LocalNetwork
  let name: String
  private let severed = Atomic<Bool>(false)

  init(network: LocalNetwork, name: String) {
    self.network = network
    self.name = name
  }

  func start(receiver: any TransportReceiver) { network.connect(name, receiver) }
  func send(_ message: KenshoMessage) {
    if severed.load(ordering: .relaxed) { return }
    network.send(message)
  }

  func sever() { severed.store(true, ordering: .relaxed) }
  func close() { network.close(name) }
}
