import Foundation
public import KenshoBus
public import KenshoProtocol
public import NIOCore
public import NIOPosix
import Synchronization

/// What a ``WebSocketTransport`` saw, for a recorder: messages sent, and messages received
/// before the bus filters them.
public enum WireEvent: Sendable {
  case sent(KenshoMessage)
  case received(KenshoMessage)
  /// A frame that is no KenshoMessage (KSP-1.2); `server_info` and `pong` are not reported.
  case rejected(text: Bool, bytes: Int)
  case connected
  case disconnected(code: Int?)
}

/// A bus's transport over a relay (PROTOCOL.md §11): one connection per worker, one text frame
/// per message, every frame received a candidate KenshoMessage, `ping` heartbeats, reconnection
/// with backoff. Messages sent while disconnected wait in a bounded queue.
public final class WebSocketTransport: Transport {
  /// When to give up on a connection, and how long to wait between attempts.
  public struct Options: Sendable {
    public var token: String?
    /// A text `ping` this often; no frame for two periods closes the connection.
    public var heartbeat: Duration = .seconds(15)
    public var firstBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(5)
    /// Messages kept while disconnected; beyond, the oldest is dropped and counted.
    public var maxQueued = 10_000
    public var connectDeadline: Duration = .seconds(10)
    public var maxFrameBytes = 16 << 20
    public init(token: String? = nil) { self.token = token }
  }

  public let url: RelayURL
  public let worker: String
  private let options: Options
  private let group: any EventLoopGroup
  private let tap: (@Sendable (WireEvent) -> Void)?
  private let state = Mutex(State())

  private struct State {
    var receiver: (any TransportReceiver)?
    var client: RelayClient?
    var queue: [ByteBuffer] = []
    var closed = false
    var attempts = 0
    var lastFrame: ContinuousClock.Instant = .now
    var heartbeat: Task<Void, Never>?
    var reconnect: Task<Void, Never>?
    var droppedWhileAway = 0
    var connections = 0
  }

  /// A transport for `worker`; call ``connect()`` before the bus starts sending.
  public init(
    url: RelayURL, worker: String, options: Options = .init(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, tap: (@Sendable (WireEvent) -> Void)? = nil
  ) {
    self.url = url
    self.worker = worker
    self.options = options
    self.group = group
    self.tap = tap
  }

  /// Opens the first connection, or throws why it could not.
  public func connect() async throws(RelayError) {
    let client = try await RelayClient.connect(
      to: url, token: options.token, label: worker, maxFrameBytes: options.maxFrameBytes,
      deadline: options.connectDeadline, group: group, handler: { [weak self] in self?.handle($0) })
    adopt(client)
  }

  /// Messages dropped because the queue was full while disconnected.
  public var droppedWhileDisconnected: Int { state.withLock { $0.droppedWhileAway } }
  /// Connections made so far (1 + reconnections).
  public var connections: Int { state.withLock { $0.connections } }

  public func start(receiver: any TransportReceiver) {
    state.withLock { $0.receiver = receiver }
  }

  public func send(_ message: KenshoMessage) {
    guard let bytes = try? JSONText.serialize(KenshoCodec.json(message)) else { return }
    let buffer = ByteBuffer(bytes: bytes)
    let client: RelayClient? = state.withLock { s in
      if s.closed { return nil }
      if let c = s.client, c.isOpen { return c }
      if s.queue.count >= options.maxQueued {
        s.queue.removeFirst()
        s.droppedWhileAway += 1
      }
      s.queue.append(buffer)
      return nil
    }
    tap?(.sent(message))
    client?.send(buffer, text: true)
  }

  public func close() {
    let (client, tasks) = state.withLock { s in
      s.closed = true
      s.receiver = nil
      defer { s.client = nil }
      return (s.client, [s.heartbeat, s.reconnect])
    }
    for task in tasks { task?.cancel() }
    client?.close()
  }

  // MARK: - Connection life

  private func adopt(_ client: RelayClient) {
    let (queued, stale) = state.withLock { s -> ([ByteBuffer], Bool) in
      if s.closed { return ([], true) }
      s.client = client
      s.attempts = 0
      s.connections += 1
      s.lastFrame = .now
      defer { s.queue = [] }
      return (s.queue, false)
    }
    if stale {
      client.close()
      return
    }
    tap?(.connected)
    if !queued.isEmpty { client.send(batch: queued, text: true) }
    startHeartbeat()
  }

  private func startHeartbeat() {
    let period = options.heartbeat
    let task = Task(executorPreference: OffPoolExecutor.shared) { [weak self] in
      while !Task.isCancelled {
        try? await Task.sleep(for: period)
        guard let self, !Task.isCancelled else { return }
        let (client, silent) = self.state.withLock { s in
          (s.client, ContinuousClock.now - s.lastFrame > period * 2)
        }
        guard let client else { return }
        if silent {
          client.close()  // the close event reconnects
          return
        }
        client.send(text: "ping")
      }
    }
    let old = state.withLock { s in
      defer { s.heartbeat = task }
      return s.heartbeat
    }
    old?.cancel()
  }

  private func handle(_ event: RelayEvent) {
    switch event {
    case .frame(let text, let bytes):
      let receiver = state.withLock { s in
        s.lastFrame = .now
        return s.receiver
      }
      guard let receiver else { return }
      let view = bytes.readableBytesView
      if text, view.elementsEqual("pong".utf8) { return }
      switch KenshoCodec.decode(Data(view)) {
      case .success(let message):
        tap?(.received(message))
        receiver.receive(message)
      case .failure:
        if text, Self.isServerInfo(view) { return }  // KSP-11.4: not a message, ignored
        tap?(.rejected(text: text, bytes: view.count))
        receiver.rejected()
      }
    case .closed(let code):
      tap?(.disconnected(code: code))
      scheduleReconnect()
    }
  }

  private func scheduleReconnect() {
    let delay: Duration? = state.withLock { s in
      s.client = nil
      s.heartbeat?.cancel()
      guard !s.closed else { return nil }
      s.attempts += 1
      let exponent = min(s.attempts - 1, 16)
      let base = min(options.firstBackoff * (1 << exponent), options.maxBackoff)
      return base * Double.random(in: 0.5...1.0)
    }
    guard let delay else { return }
    let task = Task(executorPreference: OffPoolExecutor.shared) { [weak self] in
      try? await Task.sleep(for: delay)
      guard let self, !Task.isCancelled else { return }
      do {
        try await self.connect()
      } catch {
        self.scheduleReconnect()
      }
    }
    state.withLock { $0.reconnect = task }
  }

  private static func isServerInfo(_ view: ByteBufferView) -> Bool {
    guard case .success(.object(let o)) = KenshoCodec.parse(Data(view)) else { return false }
    return o["type"] == .string("server_info")
  }
}
