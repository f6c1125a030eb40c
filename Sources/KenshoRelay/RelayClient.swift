import Foundation
public import NIOCore
import NIOHTTP1
public import NIOPosix
import NIOWebSocket
import Synchronization

/// A relay address, `ws://HOST[:PORT][/PATH]`; the port defaults to 8080 (PROTOCOL.md §11).
public struct RelayURL: Sendable, Hashable, CustomStringConvertible {
  public let host: String
  public let port: Int
  public let path: String

  /// Parses `text`, or says what is wrong with it.
  public init(_ text: String) throws(RelayError) {
    guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased() else {
      throw .badURL(text, "expected ws://HOST:PORT/")
    }
    guard scheme == "ws" else {
      throw .badURL(text, scheme == "wss" ? "wss:// (TLS) is not supported; use ws://" : "expected the ws:// scheme")
    }
    guard let host = c.host, !host.isEmpty else { throw .badURL(text, "no host") }
    let port = c.port ?? 8080
    guard (1...65535).contains(port) else { throw .badURL(text, "port \(port) is out of 1...65535") }
    self.host = host
    self.port = port
    self.path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
  }

  public var description: String {
    "ws://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)"
  }
}

/// Why a relay connection failed.
public enum RelayError: Error, Sendable, Equatable, CustomStringConvertible {
  case badURL(String, String)
  /// Nothing answered at the address (connection refused, no route, DNS).
  case unreachable(String, String)
  /// The relay answered the upgrade with this HTTP status instead of 101.
  case refused(String, status: Int)
  /// No answer within the deadline.
  case timedOut(String, Duration)
  /// The connection is closed.
  case closed

  public var description: String {
    switch self {
    case .badURL(let url, let why): "relay URL \(url): \(why)"
    case .unreachable(let url, let why): "relay \(url) does not answer: \(why)"
    case .refused(let url, 401): "relay \(url) refused the connection: HTTP 401 (token missing or wrong)"
    case .refused(let url, let status): "relay \(url) refused the WebSocket upgrade: HTTP \(status)"
    case .timedOut(let url, let d): "relay \(url) did not complete the WebSocket upgrade within \(d)"
    case .closed: "the relay connection is closed"
    }
  }
}

/// What a ``RelayClient`` receives.
public enum RelayEvent: Sendable {
  /// A text (`text: true`) or binary message.
  case frame(text: Bool, bytes: ByteBuffer)
  /// The connection ended; the close code when the relay sent one.
  case closed(code: Int?)
}

/// One WebSocket connection to a relay: sends masked frames, hands every received message to
/// its handler (on the connection's event loop, in order), can stop reading to play a stalled
/// receiver (KSP-11.6).
public final class RelayClient: Sendable {
  public let url: RelayURL
  private let channel: any Channel

  /// Connects to `url`, presenting `token` as `?token=` and `label` as `?worker=`.
  public static func connect(
    to url: RelayURL, token: String? = nil, label: String? = nil, maxFrameBytes: Int = 16 << 20,
    deadline: Duration = .seconds(10), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    receiveBufferBytes: Int? = nil, handler: @escaping @Sendable (RelayEvent) -> Void
  ) async throws(RelayError) -> RelayClient {
    var query: [String] = []
    if let label { query.append("worker=\(escape(label))") }
    if let token { query.append("token=\(escape(token))") }
    let uri = url.path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    let head = HTTPRequestHead(
      version: .http1_1, method: .GET, uri: uri,
      headers: HTTPHeaders([("Host", "\(url.host):\(url.port)"), ("Content-Length", "0")]))
    let maxFrame = max(125, min(maxFrameBytes, Int(UInt32.max)))
    let timeout = TimeAmount.nanoseconds(Int64(clamping: deadline.components.seconds &* 1_000_000_000))
    let loop = group.next()
    let upgraded = loop.makePromise(of: (any Channel).self)
    let sniffer = StatusSniffer()
    var bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(timeout)
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
    if let bytes = receiveBufferBytes {
      // A small receive buffer makes a stalled reader's backlog show at the relay sooner.
      bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(clamping: bytes))
    }
    let connecting =
      bootstrap
      .channelInitializer { channel in
        let upgrader = NIOWebSocketClientUpgrader(
          maxFrameSize: maxFrame,
          upgradePipelineHandler: { channel, _ in
            channel.eventLoop.makeCompletedFuture {
              let sync = channel.pipeline.syncOperations
              _ = sync.removeHandler(name: StatusSniffer.name)
              try sync.addHandler(
                NIOWebSocketFrameAggregator(
                  minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16, maxAccumulatedFrameSize: maxFrame))
              try sync.addHandler(ClientFrameHandler(handler: handler))
              upgraded.succeed(channel)
            }
          })
        return channel.eventLoop.makeCompletedFuture {
          let sync = channel.pipeline.syncOperations
          // The relay's first frame may share a read with the 101 response: keep those bytes.
          try sync.addHTTPClientHandlers(
            leftOverBytesStrategy: .forwardBytes,
            withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
          try sync.addHandler(sniffer.handler(failing: upgraded), name: StatusSniffer.name)
        }
      }
      .connect(host: url.host, port: url.port)
    connecting.whenSuccess { channel in
      channel.writeAndFlush(HTTPClientRequestPart.head(head), promise: nil)
      channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }
    connecting.whenFailure { upgraded.fail(ConnectFailure(error: $0)) }
    do {
      let channel = try await withDeadline(timeout, on: loop, upgraded.futureResult).get()
      return RelayClient(url: url, channel: channel)
    } catch is DeadlineExceeded {
      connecting.whenSuccess { $0.close(promise: nil) }
      throw .timedOut(url.description, deadline)
    } catch let failure as ConnectFailure {
      throw .unreachable(url.description, "\(failure.error)")
    } catch let refusal as Refusal {
      throw .refused(url.description, status: refusal.status)
    } catch {
      throw .unreachable(url.description, "\(error)")
    }
  }

  private init(url: RelayURL, channel: any Channel) {
    self.url = url
    self.channel = channel
  }

  /// Sends one text message.
  public func send(text: String) { send(ByteBuffer(string: text), text: true) }

  /// Sends one message of bytes, as a text or a binary frame.
  public func send(_ bytes: ByteBuffer, text: Bool) {
    channel.writeAndFlush(Self.frame(bytes, text: text), promise: nil)
  }

  /// Sends several messages with one flush (one hop to the connection's event loop).
  public func send(batch: [ByteBuffer], text: Bool) {
    let channel = self.channel
    channel.eventLoop.execute {
      for bytes in batch { channel.write(Self.frame(bytes, text: text), promise: nil) }
      channel.flush()
    }
  }

  /// Stops reading from the socket (the relay's queue for us fills up), or starts again.
  public func reading(_ on: Bool) {
    let channel = self.channel
    channel.eventLoop.execute {
      channel.setOption(ChannelOptions.autoRead, value: on).whenComplete { _ in }
      if on { channel.read() }
    }
  }

  /// Whether the connection is still open.
  public var isOpen: Bool { channel.isActive }

  /// Sends a close frame and closes the connection.
  public func close() {
    var code = ByteBuffer()
    code.write(webSocketErrorCode: .normalClosure)
    let channel = self.channel
    channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code))
      .whenComplete { _ in channel.close(promise: nil) }
  }

  private static func frame(_ bytes: ByteBuffer, text: Bool) -> WebSocketFrame {
    WebSocketFrame(fin: true, opcode: text ? .text : .binary, maskKey: .random(), data: bytes)
  }

  private static func escape(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
  }
}

struct ConnectFailure: Error { let error: any Error }
struct Refusal: Error { let status: Int }

struct DeadlineExceeded: Error {}

/// `future`, or a failure with ``DeadlineExceeded`` after `timeout`.
func withDeadline<T: Sendable>(_ timeout: TimeAmount, on loop: any EventLoop, _ future: EventLoopFuture<T>)
  -> EventLoopFuture<T>
{
  let promise = loop.makePromise(of: T.self)
  let timer = loop.scheduleTask(in: timeout) { promise.fail(DeadlineExceeded()) }
  future.whenComplete { result in
    timer.cancel()
    promise.completeWith(result)
  }
  return promise.futureResult
}

/// Fails the upgrade with the response's status when the relay does not switch protocols (401).
final class StatusSniffer: Sendable {
  static let name = "kensho-upgrade-failure"
  fileprivate let status = Mutex<Int?>(nil)

  /// Sits last: a response that was not an upgrade, or the connection's end, fails `promise`.
  final class Failer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    let sniffer: StatusSniffer
    let promise: EventLoopPromise<any Channel>
    init(_ sniffer: StatusSniffer, _ promise: EventLoopPromise<any Channel>) {
      self.sniffer = sniffer
      self.promise = promise
    }
    func fail(_ context: ChannelHandlerContext) {
      promise.fail(Refusal(status: sniffer.status.withLock { $0 } ?? 0))
      context.close(promise: nil)
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      // The upgrade handler passes on a response that is no upgrade, head first.
      if case .head(let head) = unwrapInboundIn(data) { sniffer.status.withLock { $0 = Int(head.status.code) } }
      fail(context)
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
      // The response itself follows the error; fail once it is read, or when the channel closes.
    }
    func channelInactive(context: ChannelHandlerContext) {
      fail(context)
      context.fireChannelInactive()
    }
  }

  func handler(failing promise: EventLoopPromise<any Channel>) -> Failer { Failer(self, promise) }
}

/// The client's side of the frames: messages to the handler, pings answered, close echoed.
final class ClientFrameHandler: ChannelInboundHandler {
  typealias InboundIn = WebSocketFrame
  typealias OutboundOut = WebSocketFrame
  private let handler: @Sendable (RelayEvent) -> Void
  private var closeCode: Int?
  private var ended = false

  init(handler: @escaping @Sendable (RelayEvent) -> Void) { self.handler = handler }

  func handlerAdded(context: ChannelHandlerContext) {
    context.read()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    switch frame.opcode {
    case .text, .binary: handler(.frame(text: frame.opcode == .text, bytes: frame.unmaskedData))
    case .ping:
      let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
      context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
    case .connectionClose:
      var data = frame.unmaskedData
      closeCode = data.readWebSocketErrorCode().map(Self.number)
      let reply = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: ByteBuffer())
      context.writeAndFlush(wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    default: break
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    end()
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) { end() }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }

  private func end() {
    guard !ended else { return }
    ended = true
    handler(.closed(code: closeCode))
  }

  private static func number(_ code: WebSocketErrorCode) -> Int {
    var b = ByteBuffer()
    b.write(webSocketErrorCode: code)
    return Int(b.readInteger(as: UInt16.self) ?? 0)
  }
}
