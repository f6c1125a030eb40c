public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// How a relay behaves: its limits and whether it asks for a token (PROTOCOL.md §11).
public struct RelayConfiguration: Sendable, Hashable {
  /// Clients must present this token (`?token=` or `Authorization: Bearer`), KSP-11.5.
  public var token: String?
  /// The largest message a client may send; a larger one closes its connection with 1009.
  public var maxFrameBytes: Int = 1 << 20
  /// What the relay keeps queued for one receiver before it drops frames to it (KSP-11.6).
  public var maxBufferedBytes: Int = 8 << 20
  /// The name announced in `server_info` (KSP-11.4).
  public var name: String = "kensho-swift-relay"
  /// The kernel's send buffer per connection (SO_SNDBUF), when set; the system tunes it otherwise.
  public var sendBufferBytes: Int?

  public init(token: String? = nil, maxFrameBytes: Int = 1 << 20, maxBufferedBytes: Int = 8 << 20) {
    self.token = token
    self.maxFrameBytes = max(125, min(maxFrameBytes, Int(UInt32.max)))
    self.maxBufferedBytes = max(1024, maxBufferedBytes)
  }
}

/// What a relay counted since it started.
public struct RelayStats: Sendable, Hashable, Codable {
  /// Connections upgraded (admitted) so far.
  public var admitted = 0
  /// Connections open now.
  public var open = 0
  /// Upgrade requests refused (401, 404, 426).
  public var refused = 0
  /// Text and binary frames received from clients (`ping` excluded).
  public var framesIn = 0
  /// Frames written to receivers.
  public var framesOut = 0
  /// Frames not delivered to a receiver that was not reading (KSP-11.6).
  public var dropped = 0
  /// `ping` text frames answered with `pong` (KSP-11.3).
  public var pings = 0
  /// Frames the fault policy dropped, delayed or duplicated (embedded relay only).
  public var faulted = 0

  public init() {}
}

/// A WebSocket relay implementing KSP-11: every frame to every other connection, in order,
/// `ping` answered, `server_info` on connect, optional token, bounded queues per receiver.
///
/// All connections live on one event loop, so fan-out is a plain loop over the receivers'
/// pipelines with no thread hop; a second loop would only add hops on a 2-core machine.
public final class RelayServer: Sendable {
  /// The address clients connect to, `ws://HOST:PORT/`.
  public let url: String
  /// The port the relay listens on (the system's choice when 0 was asked).
  public let port: Int
  private let channel: any Channel
  private let hub: RelayHub
  private let ownedGroup: MultiThreadedEventLoopGroup?

  /// Starts a relay on `host:port` (port 0: any free port).
  public static func start(
    host: String = "127.0.0.1", port: Int = 0, configuration: RelayConfiguration = .init(),
    policy: (any RelayPolicy)? = nil, group: (any EventLoopGroup)? = nil
  ) async throws -> RelayServer {
    let owned = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
    let loop = ((owned as (any EventLoopGroup)?) ?? group ?? MultiThreadedEventLoopGroup.singleton).next()
    let hub = RelayHub(configuration: configuration, policy: policy, eventLoop: loop)
    let watermark = ChannelOptions.Types.WriteBufferWaterMark(
      low: configuration.maxBufferedBytes / 2, high: configuration.maxBufferedBytes)
    do {
      var bootstrap = ServerBootstrap(group: loop)
        .serverChannelOption(.backlog, value: 1024)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelOption(.writeBufferWaterMark, value: watermark)
      if let bytes = configuration.sendBufferBytes {
        bootstrap = bootstrap.childChannelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(clamping: bytes))
      }
      let channel =
        try await bootstrap
        .childChannelInitializer { channel in hub.configure(channel) }
        .bind(host: host, port: port).get()
      let bound = channel.localAddress?.port ?? port
      let shownHost = host.contains(":") ? "[\(host)]" : host
      return RelayServer(
        url: "ws://\(shownHost):\(bound)/", port: bound, channel: channel, hub: hub, ownedGroup: owned)
    } catch {
      try? await owned?.shutdownGracefully()
      throw error
    }
  }

  private init(
    url: String, port: Int, channel: any Channel, hub: RelayHub, ownedGroup: MultiThreadedEventLoopGroup?
  ) {
    self.url = url
    self.port = port
    self.channel = channel
    self.hub = hub
    self.ownedGroup = ownedGroup
  }

  /// What the relay counted so far.
  public func stats() async -> RelayStats {
    (try? await hub.eventLoop.submit { self.hub.stats }.get()) ?? RelayStats()
  }

  /// The labels of the open connections (their `worker` query item, else `#N`), sorted.
  public func labels() async -> [String] {
    (try? await hub.eventLoop.submit { self.hub.labels }.get()) ?? []
  }

  /// Closes a client's connection, as a fault (`label` as given in its `worker` query item).
  public func disconnect(_ label: String) async {
    try? await hub.eventLoop.submit { self.hub.disconnect(label) }.get()
  }

  /// Stops listening and closes every connection.
  public func close() async {
    try? await channel.close()
    try? await hub.eventLoop.submit { self.hub.closeAll() }.get()
    try? await ownedGroup?.shutdownGracefully()
  }
}

/// What the relay does with one frame for one receiver: the embedded relay's fault point
/// (drop, delay, duplicate per connection) and its recorder.
public protocol RelayPolicy: Sendable {
  /// A frame arrived from `from` (its label); called on the relay's event loop, in order.
  func received(from: String, text: Bool, bytes: ByteBuffer)
  /// What to do with the frame `from` → `to`; `.deliver` unless a fault says otherwise.
  /// `frame` numbers the frames the relay received (from 1), as ``outcome(frame:to:written:)``
  /// names them.
  func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute
  /// A connection with this label was admitted; called on the relay's event loop.
  func admitted(_ label: String)
  /// What became of each write of frame `frame` that ``route(from:to:text:bytes:frame:)`` sent to
  /// `to` (a duplicate is two): written to the connection, or dropped there (its queue was full,
  /// KSP-11.6, or it closed before a delayed frame was due).
  func outcome(frame: Int, to: String, written: Bool)
}

extension RelayPolicy {
  public func admitted(_ label: String) {}
  public func outcome(frame: Int, to: String, written: Bool) {}
}

/// A fault decision for one frame and one receiver.
public enum RelayRoute: Sendable, Equatable {
  case deliver
  case drop
  case duplicate
  case delay(nanoseconds: Int64)
}

/// The relay's state, confined to its event loop: the open connections and the counters.
final class RelayHub: @unchecked Sendable {
  let configuration: RelayConfiguration
  let policy: (any RelayPolicy)?
  let eventLoop: any EventLoop
  var stats = RelayStats()
  private var peers: [ObjectIdentifier: RelayPeer] = [:]
  /// Receivers written to since the last flush.
  private var unflushed: [RelayPeer] = []
  private var nextNumber = 0

  init(configuration: RelayConfiguration, policy: (any RelayPolicy)?, eventLoop: any EventLoop) {
    self.configuration = configuration
    self.policy = policy
    self.eventLoop = eventLoop
  }

  /// The HTTP pipeline of a new TCP connection, upgradable to a WebSocket on `/`.
  func configure(_ channel: any Channel) -> EventLoopFuture<Void> {
    let upgrader = NIOWebSocketServerUpgrader(
      maxFrameSize: configuration.maxFrameBytes, automaticErrorHandling: true,
      // The gate before the upgrade handler has refused what must be refused (KSP-11.5).
      shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
      upgradePipelineHandler: { channel, head in
        let label = UpgradeRequest(head).worker
        return channel.pipeline.removeHandler(name: RefusalHandler.name).flatMapThrowing {
          let sync = channel.pipeline.syncOperations
          try sync.addHandler(
            NIOWebSocketFrameAggregator(
              minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
              maxAccumulatedFrameSize: self.configuration.maxFrameBytes))
          let raw = RawFrameWriter()
          try sync.addHandler(raw, position: .first)
          try sync.addHandler(RelayConnectionHandler(hub: self, label: label, raw: raw))
        }
      })
    return channel.eventLoop.makeCompletedFuture {
      let sync = channel.pipeline.syncOperations
      try sync.configureHTTPServerPipeline(
        withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
      let upgrading = try sync.handler(type: HTTPServerUpgradeHandler.self)
      try sync.addHandler(RefusalHandler(hub: self, gate: true), position: .before(upgrading))
      try sync.addHandler(RefusalHandler(hub: self, gate: false), name: RefusalHandler.name)
    }
  }

  func admit(_ context: ChannelHandlerContext, raw: RawFrameWriter, label: String?) -> RelayPeer {
    nextNumber += 1
    let peer = RelayPeer(context: context, raw: raw, label: label ?? "#\(nextNumber)")
    peers[ObjectIdentifier(peer)] = peer
    stats.admitted += 1
    stats.open += 1
    policy?.admitted(peer.label)
    return peer
  }

  func remove(_ peer: RelayPeer) {
    if peers.removeValue(forKey: ObjectIdentifier(peer)) != nil { stats.open -= 1 }
  }

  /// KSP-11.1, 11.2, 11.6: the frame to every other open connection, in arrival order,
  /// dropped (and counted) for a receiver whose queue is full.
  func forward(from sender: RelayPeer, text: Bool, bytes: ByteBuffer) {
    stats.framesIn += 1
    let number = stats.framesIn
    policy?.received(from: sender.label, text: text, bytes: bytes)
    let frame = Self.encoded(text: text, bytes)
    for peer in peers.values where peer !== sender {
      var route = RelayRoute.deliver
      if let policy {
        route = policy.route(from: sender.label, to: peer.label, text: text, bytes: bytes, frame: number)
        if route != .deliver { stats.faulted += 1 }
      }
      switch route {
      case .deliver: write(frame, to: peer, number: number)
      case .drop: break
      case .duplicate:
        write(frame, to: peer, number: number)
        write(frame, to: peer, number: number)
      case .delay(let nanoseconds):
        let label = peer.label
        eventLoop.scheduleTask(in: .nanoseconds(max(0, nanoseconds))) { [weak peer] in
          guard let peer, self.peers[ObjectIdentifier(peer)] != nil else {
            self.policy?.outcome(frame: number, to: label, written: false)
            return
          }
          self.write(frame, to: peer, number: number)
          self.flush()
        }
      }
    }
  }

  /// Writes `frame` (number `number`) to `peer`, or drops it there when its queue is full, and
  /// tells the policy which.
  /// A server's frame (unmasked, final) holding `bytes`, encoded once for all its receivers:
  /// each then gets the same buffer, written below the WebSocket encoder (``RawFrameWriter``).
  static func encoded(text: Bool, _ bytes: ByteBuffer) -> ByteBuffer {
    let count = bytes.readableBytes
    var frame = ByteBuffer()
    frame.reserveCapacity(count + 10)
    frame.writeInteger(UInt8(0x80 | (text ? 0x1 : 0x2)))
    if count < 126 {
      frame.writeInteger(UInt8(count))
    } else if count <= 0xFFFF {
      frame.writeInteger(UInt8(126))
      frame.writeInteger(UInt16(count))
    } else {
      frame.writeInteger(UInt8(127))
      frame.writeInteger(UInt64(count))
    }
    var payload = bytes
    frame.writeBuffer(&payload)
    return frame
  }

  private func write(_ frame: ByteBuffer, to peer: RelayPeer, number: Int) {
    guard peer.context.channel.isWritable, let raw = peer.raw.context else {
      stats.dropped += 1
      peer.dropped += 1
      policy?.outcome(frame: number, to: peer.label, written: false)
      return
    }
    policy?.outcome(frame: number, to: peer.label, written: true)
    raw.write(NIOAny(frame), promise: nil)
    stats.framesOut += 1
    if !peer.pendingFlush {
      peer.pendingFlush = true
      unflushed.append(peer)
    }
  }

  /// Flushes every receiver written to since the last flush (once per read batch).
  func flush() {
    for peer in unflushed {
      peer.pendingFlush = false
      peer.context.flush()
    }
    unflushed.removeAll(keepingCapacity: true)
  }

  func serverInfo() -> ByteBuffer {
    var name = ""
    for scalar in configuration.name.unicodeScalars where scalar.value >= 0x20 && scalar != "\"" && scalar != "\\" {
      name.unicodeScalars.append(scalar)
    }
    return ByteBuffer(
      string: #"{"type":"server_info","name":"\#(name)","protocol":"KSP/1","clients":\#(peers.count)}"#)
  }

  var labels: [String] { peers.values.map(\.label).sorted() }

  /// Closes the connections labelled `label`; nothing more is routed to them from now on.
  func disconnect(_ label: String) {
    for peer in peers.values where peer.label == label {
      remove(peer)
      peer.context.close(promise: nil)
    }
  }

  func closeAll() {
    for peer in peers.values { peer.context.close(promise: nil) }
  }
}

/// One admitted connection, as the hub sees it.
final class RelayPeer: @unchecked Sendable {  // confined to the relay's event loop
  let context: ChannelHandlerContext
  /// Where frames encoded once for every receiver are written.
  let raw: RawFrameWriter
  let label: String
  var pendingFlush = false
  var dropped = 0
  init(context: ChannelHandlerContext, raw: RawFrameWriter, label: String) {
    self.context = context
    self.raw = raw
    self.label = label
  }
}

/// The first handler of a client's pipeline, so that what is written through its context goes
/// to the socket as it is: forwarded frames, encoded once by the hub for all their receivers
/// (a write per receiver through the WebSocket encoder would box and encode each again).
final class RawFrameWriter: ChannelInboundHandler, @unchecked Sendable {  // confined to the event loop
  typealias InboundIn = NIOAny
  private(set) var context: ChannelHandlerContext?

  func handlerAdded(context: ChannelHandlerContext) { self.context = context }
  func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
}

/// One client's WebSocket: text and binary frames to the hub, `ping` answered (KSP-11.3),
/// control frames handled as RFC 6455 asks.
final class RelayConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = WebSocketFrame
  typealias OutboundOut = WebSocketFrame
  private let hub: RelayHub
  private let label: String?
  private let raw: RawFrameWriter
  private var peer: RelayPeer?
  private var closing = false

  init(hub: RelayHub, label: String?, raw: RawFrameWriter) {
    self.hub = hub
    self.label = label
    self.raw = raw
  }

  func handlerAdded(context: ChannelHandlerContext) {
    // KSP-11.4: one server_info frame, before anything forwarded.
    let info = hub.serverInfo()
    peer = hub.admit(context, raw: raw, label: label)
    context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: info)), promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    switch frame.opcode {
    case .text, .binary:
      guard let peer, !closing else { return }
      let bytes = frame.unmaskedData
      if frame.opcode == .text, bytes.readableBytesView.elementsEqual("ping".utf8) {
        hub.stats.pings += 1
        let pong = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "pong"))
        context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        return
      }
      hub.forward(from: peer, text: frame.opcode == .text, bytes: bytes)
    case .ping:
      let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
      context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
    case .pong:
      break
    case .connectionClose:
      close(context, echoing: frame.unmaskedData)
    default:
      var code = ByteBuffer()
      code.write(webSocketErrorCode: .protocolError)
      close(context, echoing: code)
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    hub.flush()
    context.fireChannelReadComplete()
  }

  func channelInactive(context: ChannelHandlerContext) {
    if let peer { hub.remove(peer) }
    peer = nil
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    if let peer { hub.remove(peer) }
    peer = nil
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }

  private func close(_ context: ChannelHandlerContext, echoing data: ByteBuffer) {
    guard !closing else { return }
    closing = true
    if let peer { hub.remove(peer) }
    peer = nil
    var code = data
    let reply =
      code.readWebSocketErrorCode().map { code -> ByteBuffer in
        var b = ByteBuffer()
        b.write(webSocketErrorCode: code)
        return b
      } ?? ByteBuffer()
    let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)
    context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
      context.close(promise: nil)
    }
  }
}

/// Refuses a request the relay must not upgrade: 401 without a valid token (KSP-11.5), 404 off
/// `/`, 426 for a plain HTTP request; then closes. As the gate (before the upgrade handler) it
/// lets an admissible request through and leaves the pipeline; as the last handler it answers
/// whatever was not upgraded.
final class RefusalHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias InboundOut = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart
  static let name = "kensho-relay-refusal"
  private let hub: RelayHub
  private let gate: Bool
  private var answered = false

  init(hub: RelayHub, gate: Bool) {
    self.hub = hub
    self.gate = gate
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !answered else { return }
    guard case .head(let head) = unwrapInboundIn(data) else {
      if gate { context.fireChannelRead(data) }
      return
    }
    let request = UpgradeRequest(head)
    let status: HTTPResponseStatus? =
      if request.path != "/" { .notFound } else if !request.admits(token: hub.configuration.token) {
        .unauthorized
      } else { gate ? nil : .upgradeRequired }
    guard let status else {
      context.fireChannelRead(data)
      context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
      return
    }
    answered = true
    hub.stats.refused += 1
    var headers = HTTPHeaders([("Connection", "close"), ("Content-Length", "0")])
    if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer") }
    if status == .upgradeRequired { headers.add(name: "Upgrade", value: "websocket") }
    let response = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    context.write(wrapOutboundOut(.head(response)), promise: nil)
    context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
      context.close(promise: nil)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}

/// The parts of an upgrade request the relay reads: its path, token and worker label.
struct UpgradeRequest {
  let path: Substring
  let query: [(String, String)]
  let bearer: String?

  init(_ head: HTTPRequestHead) {
    let uri = head.uri
    let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    path = parts.first ?? "/"
    query = parts.count > 1 ? Self.items(parts[1]) : []
    let authorization = head.headers.first(name: "Authorization") ?? ""
    bearer = authorization.lowercased().hasPrefix("bearer ") ? String(authorization.dropFirst(7)) : nil
  }

  /// The `worker` query item, a label for faults and records (64 characters at most).
  var worker: String? {
    query.first { $0.0 == "worker" }.map { String($0.1.prefix(64)) }
  }

  func admits(token: String?) -> Bool {
    guard let token else { return true }
    let offered = query.first { $0.0 == "token" }?.1
    return [offered, bearer].contains { $0.map { constantTimeEqual($0, token) } ?? false }
  }

  private static func items(_ query: Substring) -> [(String, String)] {
    query.split(separator: "&").prefix(64).map { item in
      let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      let key = percentDecoded(kv[0])
      return (key, kv.count > 1 ? percentDecoded(kv[1]) : "")
    }
  }
}

/// `%XX` and `+` decoded; an invalid escape is kept as it is.
func percentDecoded(_ s: Substring) -> String {
  var bytes: [UInt8] = []
  var utf8 = s.utf8[...]
  while let b = utf8.popFirst() {
    if b == UInt8(ascii: "+") {
      bytes.append(0x20)
    } else if b == UInt8(ascii: "%"), utf8.count >= 2,
      let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
    {
      bytes.append(v)
      utf8 = utf8.dropFirst(2)
    } else {
      bytes.append(b)
    }
  }
  return String(decoding: bytes, as: UTF8.self)
}

/// Compares two secrets in time that depends on their lengths only.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
  let x = Array(a.utf8)
  let y = Array(b.utf8)
  guard x.count == y.count else { return false }
  var diff: UInt8 = 0
  for i in x.indices { diff |= x[i] ^ y[i] }
  return diff == 0
}
