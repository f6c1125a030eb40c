import KenshoProtocol
import KenshoScenario
import Testing

@testable import KenshoVerdict

/// The KSP-11 checks on hand-made journals: each passes on a good relay's journal, fails on the
/// one break it is about with that break as counterexample, and is untested without a relay.
@Suite("Relay checks (KSP-11) on recorded journals")
struct RelayCheckTests {
  typealias Frame = RelayJournal.Frame

  static func text(_ s: String, _ t: Int64 = 0) -> Frame { Frame(text: true, body: Array(s.utf8), t: t) }
  static let info = text(#"{"type":"server_info","name":"test"}"#)

  /// Three connections that each sent two frames and received the others' (a good relay).
  static func good(token: Bool = false) -> RelayJournal {
    var j = RelayJournal(url: "ws://127.0.0.1:1/", tokenRequired: token)
    let names = ["a", "b", "c"]
    for n in names {
      var c = RelayJournal.Connection(name: n)
      c.sent = [text("\(n)0"), text("\(n)1"), Frame(text: false, body: Array(n.utf8) + [0], t: 0)]
      if n == "a" { c.sent.append(text("ping")) }
      c.received = [info]
      for o in names where o != n {
        c.received += [text("\(o)0"), text("\(o)1"), Frame(text: false, body: Array(o.utf8) + [0], t: 0)]
      }
      if n == "a" { c.received.append(text("pong")) }
      j.connections.append(c)
    }
    j.pings = ["a": 1]
    if token {
      j.upgrades = [.init(credential: "none", status: 401), .init(credential: "wrong", status: 401)]
    }
    j.stall = .init(
      stalled: "s", frames: 512, frameBytes: 65_536, receivedAfterResume: 200, closed: false,
      lagDuringStall: 5_000_000, lagBefore: 4_000_000, missedByReaders: 0)
    return j
  }

  static func judge(_ check: some Check, _ journal: RelayJournal?) -> CheckOutcome {
    var h = History()
    h.relay = journal
    return check.judge(RunRecord(history: h, metrics: Metrics()))
  }

  static func failed(_ o: CheckOutcome) -> String? {
    if case .fail(_, let c) = o { return c.text }
    return nil
  }

  static func passed(_ o: CheckOutcome) -> Bool {
    if case .pass = o { return true }
    return false
  }

  static func untested(_ o: CheckOutcome) -> Bool {
    if case .untested = o { return true }
    return false
  }

  @Test("every relay check passes on a good relay's journal and is untested without a relay")
  func goodRelay() {
    let checks: [any Check] = [
      RelayFanOut(), RelayOrder(), RelayPing(), RelayServerInfo(), RelayAuth(), RelaySlowReceiver(),
    ]
    for check in checks {
      let journal = Self.good(token: true)
      #expect(Self.passed(Self.judge(check, journal)), "\(check.rule): \(Self.judge(check, journal))")
      #expect(Self.untested(Self.judge(check, nil)), "\(check.rule) without a relay")
    }
  }

  @Test("KSP-11.1: an echo, a lost frame and a binary frame turned text each fail, naming the frame")
  func fanOut() {
    var echo = Self.good()
    echo.connections[0].received.append(Self.text("a1"))
    #expect(Self.failed(Self.judge(RelayFanOut(), echo))?.contains("sent it back") == true)

    var lost = Self.good()
    lost.connections[1].received.removeAll { $0.body == Array("a1".utf8) }
    #expect(Self.failed(Self.judge(RelayFanOut(), lost))?.contains("b never received it") == true)

    var kind = Self.good()
    kind.connections[2].received = kind.connections[2].received.map { f in
      f.text ? f : Frame(text: true, body: f.body, t: f.t)
    }
    #expect(Self.failed(Self.judge(RelayFanOut(), kind))?.contains("arrived as a text frame") == true)
  }

  @Test("KSP-11.2: two frames of one sender swapped at one receiver fail")
  func order() {
    var j = Self.good()
    let r = j.connections[1].received
    let i = r.firstIndex { $0.body == Array("a0".utf8) } ?? 0
    j.connections[1].received.swapAt(i, i + 1)
    #expect(Self.failed(Self.judge(RelayOrder(), j))?.contains("after") == true)
  }

  @Test("KSP-11.3: a forwarded ping, a missing pong and a pong sent to others each fail")
  func ping() {
    var forwarded = Self.good()
    forwarded.connections[1].received.append(Self.text("ping"))
    #expect(Self.failed(Self.judge(RelayPing(), forwarded)) != nil)
    var unanswered = Self.good()
    unanswered.connections[0].received.removeAll { $0.body == Array("pong".utf8) }
    #expect(Self.failed(Self.judge(RelayPing(), unanswered)) != nil)
    var broadcast = Self.good()
    broadcast.connections[2].received.append(Self.text("pong"))
    #expect(Self.failed(Self.judge(RelayPing(), broadcast))?.contains("another client's answer") == true)
    var none = Self.good()
    none.pings = [:]
    #expect(Self.untested(Self.judge(RelayPing(), none)))
  }

  @Test("KSP-11.4: a connection whose first frame is no server_info is graded non-strict by the judge")
  func serverInfo() {
    var j = Self.good()
    j.connections[0].received.removeFirst()
    #expect(Self.failed(Self.judge(RelayServerInfo(), j)) != nil)
    var h = History()
    h.relay = j
    let result = Judge.judge(Expectation(.relayServerInfo), RunRecord(history: h, metrics: Metrics()))
    #expect(result.verdict == .nonStrict)
  }

  @Test("KSP-11.5: an admitted intruder, or a refusal other than 401, fails; no token is untested")
  func auth() {
    var admitted = Self.good(token: true)
    admitted.upgrades[0].status = 101
    #expect(Self.failed(Self.judge(RelayAuth(), admitted))?.contains("not 401") == true)
    var leaked = Self.good(token: true)
    leaked.upgrades[0] = .init(credential: "none", status: 101)
    leaked.upgrades[0].intruderFrames = [Array("intruder".utf8)]
    leaked.connections[1].received.append(Self.text("intruder"))
    #expect(Self.failed(Self.judge(RelayAuth(), leaked))?.contains("without a valid token") == true)
    #expect(Self.untested(Self.judge(RelayAuth(), Self.good(token: false))))
  }

  @Test("KSP-11.6: a relay that held the whole flood, slowed the readers or lost their frames fails")
  func slowReceiver() {
    var held = Self.good()
    held.stall?.receivedAfterResume = 512
    #expect(Self.failed(Self.judge(RelaySlowReceiver(), held))?.contains("kept them all") == true)
    var closed = held
    closed.stall?.closed = true
    #expect(Self.passed(Self.judge(RelaySlowReceiver(), closed)))
    var slowed = Self.good()
    slowed.stall?.lagDuringStall = 3_000_000_000
    #expect(Self.failed(Self.judge(RelaySlowReceiver(), slowed)) != nil)
    var missed = Self.good()
    missed.stall?.missedByReaders = 8
    #expect(Self.failed(Self.judge(RelaySlowReceiver(), missed)) != nil)
  }
}
