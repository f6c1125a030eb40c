import Foundation
import KenshoProtocol
import KenshoRelay
import KenshoVerdict
import NIOCore
import Synchronization

/// Drives a relay through the situations of KSP-11 with raw connections of its own and records
/// what each sent and received in a ``RelayJournal``, which the relay checks read. Every wait
/// has a deadline; whatever could not be done is written in the journal's problems.
struct RelayProbe {
  let url: RelayURL
  let token: String?
  /// Text frames each of the three connections sends, and binary ones.
  var textFrames = 100
  var binaryFrames = 10
  /// The flood past the stalled receiver: far beyond any socket buffer.
  var floodFrames = 256
  var floodFrameBytes = 64 << 10
  var quiet: Duration = .seconds(10)

  /// One probe connection and what it received, with times relative to `start`.
  final class Peer: Sendable {
    let name: String
    let start: ContinuousClock.Instant
    private let state = Mutex<(received: [RelayJournal.Frame], closed: Int?, count: Int)>(([], nil, 0))
    /// Record only the count of frames (during the flood), not their bodies.
    let countOnly = Atomic<Bool>(false)

    init(name: String, start: ContinuousClock.Instant) {
      self.name = name
      self.start = start
    }

    func handle(_ event: RelayEvent) {
      let t = Nanos.since(start)
      switch event {
      case .frame(let text, let bytes):
        let light = countOnly.load(ordering: .relaxed)
        state.withLock { s in
          s.count += 1
          // A relay that floods the probe cannot make it hold more than 20 000 frames.
          if !light && s.received.count < 20_000 && bytes.readableBytes <= 1 << 16 {
            s.received.append(.init(text: text, body: Array(bytes.readableBytesView), t: t))
          }
        }
      case .closed(let code): state.withLock { $0.closed = code ?? 1006 }
      }
    }

    var received: [RelayJournal.Frame] { state.withLock { $0.received } }
    var count: Int { state.withLock { $0.count } }
    var closed: Int? { state.withLock { $0.closed } }
  }

  func run() async -> RelayJournal {
    var journal = RelayJournal(url: url.description, tokenRequired: token != nil)
    let start = ContinuousClock.now
    func now() -> Int64 { Nanos.since(start) }
    var peers: [(Peer, RelayClient)] = []
    defer { for (_, c) in peers { c.close() } }
    for name in ["probe-a", "probe-b", "probe-c"] {
      let peer = Peer(name: name, start: start)
      do {
        let client = try await RelayClient.connect(
          to: url, token: token, label: name, deadline: .seconds(10), handler: peer.handle)
        peers.append((peer, client))
      } catch {
        journal.problems.append("probe connection \(name) failed: \(error)")
        return journal
      }
    }
    // Wait for each server_info (or a short while, for a relay that sends none: KSP-11.4).
    _ = await until(.seconds(2)) { peers.allSatisfy { $0.0.count >= 1 } }

    // KSP-11.1, 11.2: numbered text frames and binary ones from every connection, interleaved.
    var sent: [String: [RelayJournal.Frame]] = [:]
    for i in 0..<(textFrames + binaryFrames) {
      for (peer, client) in peers {
        let frame: RelayJournal.Frame
        if i < textFrames {
          frame = .init(text: true, body: Array("kensho-probe \(peer.name) #\(i)".utf8), t: now())
        } else {
          frame = .init(text: false, body: Array("\(peer.name)".utf8) + [0x00, 0xFF, UInt8(i & 0xFF)], t: now())
        }
        sent[peer.name, default: []].append(frame)
        client.send(ByteBuffer(bytes: frame.body), text: frame.text)
      }
    }
    let expected = (textFrames + binaryFrames) * (peers.count - 1)
    let before = peers.map(\.0.count)
    if !(await until(quiet, { zip(peers, before).allSatisfy { $0.0.0.count - $0.1 >= expected } })) {
      journal.problems.append(
        "after \(quiet), not every probe connection had its \(expected) frames (it may be a KSP-11.1 failure)")
    }
    // KSP-11.3: pings from the first connection.
    let pings = 3
    for _ in 0..<pings {
      peers[0].1.send(text: "ping")
      sent[peers[0].0.name, default: []].append(.init(text: true, body: Array("ping".utf8), t: now()))
    }
    journal.pings[peers[0].0.name] = pings
    _ = await until(.seconds(3)) { peers[0].0.received.filter { $0.body == Array("pong".utf8) }.count >= pings }
    try? await Task.sleep(for: .milliseconds(200))  // a late, misrouted pong would show

    // KSP-11.5: upgrades without a valid token, and with one (query and bearer forms).
    if let token {
      for (credential, offered) in [("none", nil), ("wrong", token + "-wrong")] as [(String, String?)] {
        var upgrade = RelayJournal.Upgrade(credential: credential, status: nil)
        do {
          let intruder = try await RelayClient.connect(
            to: url, token: offered, label: "intruder", deadline: .seconds(5), handler: { _ in })
          upgrade.status = 101
          let body = Array("kensho-probe intruder \(credential)".utf8)
          intruder.send(ByteBuffer(bytes: body), text: true)
          upgrade.intruderFrames.append(body)
          try? await Task.sleep(for: .milliseconds(300))
          intruder.close()
        } catch let error {
          if case .refused(_, let status) = error { upgrade.status = status }
          if case .timedOut = error { upgrade.status = nil }
        }
        journal.upgrades.append(upgrade)
      }
      journal.upgrades.append(RelayJournal.Upgrade(credential: "query", status: 101))
    }

    for (peer, client) in peers {
      var c = RelayJournal.Connection(name: peer.name)
      c.sent = sent[peer.name] ?? []
      c.received = peer.received
      c.openThroughout = peer.closed == nil && client.isOpen
      c.closeCode = peer.closed
      journal.connections.append(c)
    }

    // KSP-11.6: a fourth connection stops reading; the first floods; the second must keep up.
    journal.stall = await stall(peers: peers, start: start, journal: &journal)
    return journal
  }

  private func stall(peers: [(Peer, RelayClient)], start: ContinuousClock.Instant, journal: inout RelayJournal) async
    -> RelayJournal.Stall?
  {
    let stalledPeer = Peer(name: "probe-stalled", start: start)
    let stalled: RelayClient
    do {
      stalled = try await RelayClient.connect(
        to: url, token: token, label: stalledPeer.name, deadline: .seconds(10), receiveBufferBytes: 32 << 10,
        handler: stalledPeer.handle)
    } catch {
      journal.problems.append("the stalled probe connection failed: \(error)")
      return nil
    }
    defer { stalled.close() }
    _ = await until(.seconds(2)) { stalledPeer.count >= 1 }
    let (sender, reader) = (peers[0], peers[1])
    for (peer, _) in peers { peer.countOnly.store(true, ordering: .relaxed) }
    stalledPeer.countOnly.store(true, ordering: .relaxed)
    let frame = ByteBuffer(repeating: 0x6B, count: floodFrameBytes)
    let batch = 16
    // One batch while the fourth connection still reads: the lag before the stall.
    func deliver(_ n: Int) async -> Int64? {
      let target = reader.0.count + n
      let sentAt = ContinuousClock.now
      sender.1.send(batch: Array(repeating: frame, count: n), text: false)
      guard await until(.seconds(30), { reader.0.count >= target }) else { return nil }
      return (ContinuousClock.now - sentAt).nanoseconds
    }
    let lagBefore = await deliver(batch) ?? 0
    _ = await until(.seconds(5)) { stalledPeer.count >= 1 + batch }
    let stalledBefore = stalledPeer.count
    stalled.reading(false)
    try? await Task.sleep(for: .milliseconds(50))
    var lagDuring: Int64 = 0
    var missed = 0
    for _ in 0..<(floodFrames / batch) {
      guard let lag = await deliver(batch) else {
        missed += batch
        break
      }
      lagDuring = max(lagDuring, lag)
    }
    stalled.reading(true)
    // What arrives once it reads again: until nothing more comes for a second (30 s at most,
    // against a relay that keeps sending it something).
    var last = -1
    var rounds = 0
    while stalledPeer.count != last && rounds < 30 {
      last = stalledPeer.count
      rounds += 1
      try? await Task.sleep(for: .seconds(1))
    }
    return RelayJournal.Stall(
      stalled: stalledPeer.name, frames: floodFrames, frameBytes: floodFrameBytes,
      receivedAfterResume: stalledPeer.count - stalledBefore, closed: stalledPeer.closed != nil,
      lagDuringStall: lagDuring, lagBefore: lagBefore, missedByReaders: missed)
  }

  /// Polls `condition` every 10 ms until it holds (true) or `limit` passes (false).
  private func until(_ limit: Duration, _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + limit
    while !condition() {
      if ContinuousClock.now >= end { return false }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return true
  }
}

extension Nanos {
  /// Nanoseconds since `start` on the continuous clock.
  static func since(_ start: ContinuousClock.Instant) -> Int64 { (ContinuousClock.now - start).nanoseconds }
}
