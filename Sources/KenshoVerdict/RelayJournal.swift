import Foundation
import KenshoProtocol

/// What the harness's own raw connections did and saw at a relay (PROTOCOL.md §11): the input
/// of the KSP-11 checks, as ``History`` is the input of the bus checks. The probe that fills it
/// sends small numbered frames, pings, upgrades without a valid token, and a flood past a
/// stalled receiver; each check reads the part its rule speaks of.
public struct RelayJournal: Sendable, Hashable {
  /// One message on one connection; times are ns since the probe started.
  public struct Frame: Sendable, Hashable {
    public var text: Bool
    public var body: [UInt8]
    public var t: Int64
    public init(text: Bool, body: [UInt8], t: Int64) {
      self.text = text
      self.body = body
      self.t = t
    }
    /// The body as text, shortened for a counterexample.
    public var shown: String {
      let s = String(decoding: body.prefix(80), as: UTF8.self)
      return (text ? "text " : "binary ") + "\"\(s)\"" + (body.count > 80 ? "… (\(body.count) bytes)" : "")
    }
  }

  /// One connection of the probe, and everything it sent and received (in order).
  public struct Connection: Sendable, Hashable {
    public var name: String
    public var sent: [Frame] = []
    public var received: [Frame] = []
    /// Whether it stayed open until the probe closed it.
    public var openThroughout = true
    public var closeCode: Int?
    public init(name: String) { self.name = name }
  }

  /// An upgrade attempt with a given credential, and how the relay answered.
  public struct Upgrade: Sendable, Hashable {
    /// `none`, `wrong`, `query` (valid `?token=`), `bearer` (valid header).
    public var credential: String
    /// The HTTP status (101 when admitted), or nil when no answer came.
    public var status: Int?
    /// Frames an admitted intruder sent (their bodies), which no one may receive.
    public var intruderFrames: [[UInt8]] = []
    public init(credential: String, status: Int?) {
      self.credential = credential
      self.status = status
    }
  }

  /// The flood past a receiver that stopped reading (KSP-11.6).
  public struct Stall: Sendable, Hashable {
    public var stalled: String
    public var frames: Int
    public var frameBytes: Int
    /// Frames the stalled receiver had once it read again (server_info excluded).
    public var receivedAfterResume: Int
    /// Whether the relay closed the stalled connection.
    public var closed: Bool
    /// The slowest delivery to the reading receivers while the other one stalled, and before it, ns.
    public var lagDuringStall: Int64
    public var lagBefore: Int64
    /// Frames the reading receivers missed.
    public var missedByReaders: Int
    public init(
      stalled: String, frames: Int, frameBytes: Int, receivedAfterResume: Int, closed: Bool, lagDuringStall: Int64,
      lagBefore: Int64, missedByReaders: Int
    ) {
      self.stalled = stalled
      self.frames = frames
      self.frameBytes = frameBytes
      self.receivedAfterResume = receivedAfterResume
      self.closed = closed
      self.lagDuringStall = lagDuringStall
      self.lagBefore = lagBefore
      self.missedByReaders = missedByReaders
    }
    public var totalBytes: Int { frames * frameBytes }
  }

  public var url: String
  /// Whether the relay was run with a token (only then is KSP-11.5 exercised).
  public var tokenRequired: Bool
  /// The connections of the fan-out, order and ping steps.
  public var connections: [Connection] = []
  /// Pings sent by each connection (by name).
  public var pings: [String: Int] = [:]
  public var upgrades: [Upgrade] = []
  public var stall: Stall?
  /// What the probe could not do (a relay that refused a valid token, a deadline): each makes
  /// the checks that needed it an error, never a pass.
  public var problems: [String] = []

  public init(url: String, tokenRequired: Bool) {
    self.url = url
    self.tokenRequired = tokenRequired
  }

  /// Whether a frame is the relay's `server_info` announcement (KSP-11.4).
  public static func isServerInfo(_ f: Frame) -> Bool {
    guard f.text, f.body.count < 65_536, case .success(.object(let o)) = KenshoCodec.parse(Data(f.body)) else {
      return false
    }
    return o["type"] == .string("server_info")
  }

  static func isPing(_ f: Frame) -> Bool { f.text && f.body == Array("ping".utf8) }
  static func isPong(_ f: Frame) -> Bool { f.text && f.body == Array("pong".utf8) }

  /// Frames a connection received that another probe connection sent (not pong, not server_info).
  func forwarded(to c: Connection) -> [Frame] {
    c.received.filter { !Self.isServerInfo($0) && !Self.isPong($0) }
  }
}
