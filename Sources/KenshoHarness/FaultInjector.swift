import Foundation
import KenshoBus
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// Applies a scenario's faults to the messages crossing the harness network: drops them,
/// repeats them, or holds them back and delivers them later (so that they overtake each other).
/// Every random choice comes from the scenario's seed; in virtual time a run replays exactly.
final class FaultInjector: Sendable {
  private struct State {
    var rng: SplitMix64
    /// Per fault and stream: how many matching messages were seen, for `nth`.
    var seen: [Int: [String: Int]] = [:]
    var hits: [Int]
    /// Bytes the counters hold.
    var bytes: Int64 = 0
  }

  let faults: [Fault]
  private let workersOf: [String: Set<String>]
  private let clock: any BusClock
  private let state: Mutex<State>
  private let network = Mutex<LocalNetwork?>(nil)
  private let recorderBox = Mutex<HistoryRecorder?>(nil)
  /// Where fault decisions and forged messages are recorded.
  var recorder: HistoryRecorder? {
    get { recorderBox.withLock { $0 } }
    set { recorderBox.withLock { $0 = newValue } }
  }

  init(scenario: Scenario, seed: UInt64, clock: any BusClock) {
    faults = scenario.faults
    var groups: [String: Set<String>] = [:]
    for agent in scenario.agents { groups[agent.name] = Set(agent.workerNames) }
    workersOf = groups
    self.clock = clock
    // A stream of its own, so that faults do not shift the chunks' random data.
    state = Mutex(
      State(
        rng: SplitMix64(seed: seed ^ 0xFA17_FA17_FA17_FA17), hits: Array(repeating: 0, count: scenario.faults.count)))
  }

  func attach(_ network: LocalNetwork) { self.network.withLock { $0 = network } }

  /// The run's clock, for those who apply decisions elsewhere (the embedded relay).
  var now: Int64 { clock.nanoseconds() }

  /// Bytes the injector's own bookkeeping holds (taken out of the memory blamed on the bus).
  var bytes: Int64 { state.withLock { $0.bytes } }

  /// How many times each fault hit, by a readable name.
  var hits: [String: Int] {
    state.withLock { s in
      var out: [String: Int] = [:]
      for (i, f) in faults.enumerated() where s.hits[i] > 0 { out["#\(i) \(f.label)", default: 0] += s.hits[i] }
      return out
    }
  }

  /// Hands a held-back message on: through a slow consumer's inbox when its target has one.
  private func release(_ m: KenshoMessage, _ tag: Int32, _ network: LocalNetwork) {
    if slow?.intercept(m, tag: tag) == true { return }
    network.route(m, bypassingTap: true, tag: tag)
  }

  private let slowBox = Mutex<SlowConsumers?>(nil)
  /// Slow consumers, whose inboxes delayed and repeated messages also wait in.
  var slow: SlowConsumers? {
    get { slowBox.withLock { $0 } }
    set { slowBox.withLock { $0 = newValue } }
  }

  /// What the faults decided for one message, before it is applied.
  struct Decision {
    var drop = false
    /// Every message between two agents dropped: a cut, not a loss.
    var partitioned = false
    var copies = 0
    var delay: Int64 = 0
    /// Forged messages to send: what, from which worker, after how long.
    var forged: [(Fault.Forgery, String?, Int64)] = []
  }

  /// The faults' decision for `m` sent now, counted in the hits; every random choice from the
  /// seed. The harness network and the embedded relay apply it each in its own way.
  func decide(_ m: KenshoMessage, now: Int64) -> Decision {
    var forged: [(Fault.Forgery, String?, Int64)] = []
    let (drop, partitioned, copies, delay): (Bool, Bool, Int, Int64) = state.withLock { s in
      var drop = false
      var partitioned = false
      var copies = 0
      var delay: Int64 = 0
      for (i, f) in faults.enumerated() where matches(f, m, now: now) {
        if let nth = f.nth {
          let key = m.streamId ?? ""
          let index = s.seen[i, default: [:]][key, default: 0]
          // The harness's own per-stream counters are metered, so that they are not blamed on
          // the bus's memory (KSP-9.2).
          let before = index == 0 ? ReferenceRun.meter() : nil
          s.seen[i, default: [:]][key] = index + 1
          if let before, let after = ReferenceRun.meter() { s.bytes += after - before }
          guard index == nth else { continue }
        }
        if f.probability < 1 && s.rng.unit() >= f.probability { continue }
        s.hits[i] += 1
        switch f.kind {
        case .drop:
          drop = true
          // Every message between two agents dropped is a partition: recorded as a cut, not a loss.
          if f.between != nil && f.probability >= 1 && f.types.isEmpty { partitioned = true }
        case .duplicate: copies += 1
        case .delay(let d): delay += Self.nanoseconds(d, &s.rng)
        case .forge(let what, let from, let afterMs):
          let trigger: MessageType = what == .chunkAfterEnd ? .streamEnd : .streamRequest
          if m.type == trigger {
            forged.append((what, from.flatMap { workersOf[$0]?.sorted().first }, Nanos.from(ms: afterMs)))
          }
        }
      }
      return (drop, partitioned, copies, delay)
    }
    return Decision(drop: drop, partitioned: partitioned, copies: copies, delay: delay, forged: forged)
  }

  /// The network's tap: decides the fate of one message.
  func apply(_ m: KenshoMessage, tag: Int32) -> LocalNetwork.Verdict {
    guard !faults.isEmpty else { return .deliver }
    let now = clock.nanoseconds()
    let decision = decide(m, now: now)
    let (drop, partitioned, copies, delay, forged) = (
      decision.drop, decision.partitioned, decision.copies, decision.delay, decision.forged
    )
    let recorder = self.recorder
    if let network = network.withLock({ $0 }) {
      for (index, (what, from, after)) in forged.enumerated() {
        for (forgery, recipient) in Self.forgeries(what, for: m, from: from, index: index) {
          _ = clock.schedule(at: now &+ after) { [clock] in
            let tag = recorder?.sent(forgery, origin: .forged(what.rawValue), at: clock.nanoseconds()) ?? -1
            network.route(forgery, to: recipient, tag: tag)
          }
        }
      }
    }
    if drop {
      recorder?.record(.fault(tag, partitioned ? .cutOff : .dropped), at: now)
      return .drop
    }
    guard copies > 0 || delay > 0, let network = network.withLock({ $0 }) else { return .deliver }
    for _ in 0..<copies {
      recorder?.record(.fault(tag, .duplicated), at: now)
      // The copy follows the original (same deadline, scheduled after it).
      _ = clock.schedule(at: now &+ delay) { [self] in release(m, tag, network) }
    }
    if delay > 0 {
      recorder?.record(.fault(tag, .delayed(delay)), at: now)
      _ = clock.schedule(at: now &+ delay) { [self] in release(m, tag, network) }
      return .drop
    }
    return .deliver
  }

  /// The forged messages for `m` (a stream_request, or a stream_end), with the worker each is
  /// handed to.
  static func forgeries(_ what: Fault.Forgery, for m: KenshoMessage, from: String?, index: Int) -> [(
    KenshoMessage, String
  )] {
    let id = "forged-\(index)-\(m.messageId)"
    // For a stream_request the consumer is its sender; for a stream_end, its target.
    let (consumer, producer) =
      m.type == .streamEnd ? (m.targetWorker, m.sourceWorker) : (m.sourceWorker, m.targetWorker)
    func chunk(_ messageId: String, source: String, target: String, seq: Int?) -> KenshoMessage {
      var c = KenshoMessage(
        messageId: messageId, sourceWorker: source, targetWorker: target, type: .streamChunk, payload: "forged",
        streamId: m.streamId)
      c.seq = seq
      return c
    }
    switch what {
    case .cancel:
      guard let from else { return [] }
      return [
        (
          KenshoMessage(
            messageId: id, sourceWorker: from, targetWorker: producer, type: .streamCancel, payload: "forged",
            streamId: m.streamId), producer
        )
      ]
    case .malformedChunk:
      return [
        (chunk(id, source: "9-not-a-worker", target: consumer, seq: 0), consumer),
        (chunk(String(repeating: "x", count: 300), source: producer, target: consumer, seq: 0), consumer),
      ]
    case .misaddressedChunk:
      return [(chunk(id, source: producer, target: "someoneElse", seq: 0), consumer)]
    case .errorWithoutError:
      return [
        (
          KenshoMessage(
            messageId: id, sourceWorker: producer, targetWorker: consumer, type: .streamError, payload: .null,
            streamId: m.streamId), consumer
        )
      ]
    case .chunkAfterEnd:
      return [(chunk(id, source: producer, target: consumer, seq: m.seq), consumer)]
    case .foreignChunk:
      guard let from else { return [] }
      return [(chunk(id, source: from, target: consumer, seq: 0), consumer)]
    }
  }

  private func matches(_ f: Fault, _ m: KenshoMessage, now: Int64) -> Bool {
    if !f.types.isEmpty && !f.types.contains(m.type) { return false }
    if let from = f.fromMs, Double(now) < from * 1e6 { return false }
    if let until = f.untilMs, Double(now) >= until * 1e6 { return false }
    if let (a, b) = f.between {
      let sa = workersOf[a] ?? []
      let sb = workersOf[b] ?? []
      let forward = sa.contains(m.sourceWorker) && sb.contains(m.targetWorker)
      let backward = sb.contains(m.sourceWorker) && sa.contains(m.targetWorker)
      if !forward && !backward { return false }
    }
    return true
  }

  private static func nanoseconds(_ d: Fault.Distribution, _ rng: inout SplitMix64) -> Int64 {
    let ms: Double
    switch d {
    case .constant(let v): ms = v
    case .uniform(let lo, let hi): ms = lo + (hi - lo) * rng.unit()
    case .exponential(let mean): ms = -mean * log(1 - rng.unit())
    }
    return Nanos.from(ms: ms)
  }
}

extension SplitMix64 {
  /// A uniform value in [0, 1).
  mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}

extension Fault {
  /// A short description for reports: "drop stream_chunk nth=3".
  var label: String {
    var parts: [String]
    switch kind {
    case .drop: parts = ["drop"]
    case .duplicate: parts = ["duplicate"]
    case .delay(.constant(let ms)): parts = ["delay \(ms) ms"]
    case .delay(.uniform(let lo, let hi)): parts = ["delay \(lo)–\(hi) ms"]
    case .delay(.exponential(let mean)): parts = ["delay exp(mean \(mean) ms)"]
    case .forge(let what, let from, let after):
      parts = ["forged \(what.rawValue)" + (from.map { " from \($0)" } ?? "") + " after \(after) ms"]
    }
    if !types.isEmpty { parts.append(types.map(\.rawValue).sorted().joined(separator: "|")) }
    if let nth { parts.append("nth=\(nth)") }
    if probability < 1 { parts.append("p=\(probability)") }
    if let (a, b) = between { parts.append("\(a)↔\(b)") }
    if fromMs != nil || untilMs != nil { parts.append("[\(fromMs ?? 0), \(untilMs.map { "\($0)" } ?? "∞")) ms") }
    return parts.joined(separator: " ")
  }
}
