import Foundation
import KenshoBus
import KenshoProtocol
import KenshoScenario
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
  }

  let faults: [Fault]
  private let workersOf: [String: Set<String>]
  private let clock: any BusClock
  private let state: Mutex<State>
  private let network = Mutex<LocalNetwork?>(nil)

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

  /// How many times each fault hit, by a readable name.
  var hits: [String: Int] {
    state.withLock { s in
      var out: [String: Int] = [:]
      for (i, f) in faults.enumerated() where s.hits[i] > 0 { out["#\(i) \(f.label)", default: 0] += s.hits[i] }
      return out
    }
  }

  /// The network's tap: decides the fate of one message.
  func apply(_ m: KenshoMessage) -> LocalNetwork.Verdict {
    guard !faults.isEmpty else { return .deliver }
    let now = clock.nanoseconds()
    var forged: [(String, Int64)] = []
    let (drop, copies, delay): (Bool, Int, Int64) = state.withLock { s in
      var drop = false
      var copies = 0
      var delay: Int64 = 0
      for (i, f) in faults.enumerated() where matches(f, m, now: now) {
        if let nth = f.nth {
          let key = m.streamId ?? ""
          let index = s.seen[i, default: [:]][key, default: 0]
          s.seen[i, default: [:]][key] = index + 1
          guard index == nth else { continue }
        }
        if f.probability < 1 && s.rng.unit() >= f.probability { continue }
        s.hits[i] += 1
        switch f.kind {
        case .drop: drop = true
        case .duplicate: copies += 1
        case .delay(let d): delay += Self.nanoseconds(d, &s.rng)
        case .forgeCancel(let from, let afterMs):
          if m.type == .streamRequest, let worker = workersOf[from]?.sorted().first {
            forged.append((worker, Int64(afterMs * 1e6)))
          }
        }
      }
      return (drop, copies, delay)
    }
    if let network = network.withLock({ $0 }) {
      for (index, (from, after)) in forged.enumerated() {
        let forgery = KenshoMessage(
          messageId: "forged-\(m.messageId)-\(index)", sourceWorker: from, targetWorker: m.targetWorker,
          type: .streamCancel,
          payload: "forged", streamId: m.streamId)
        _ = clock.schedule(at: now &+ after) { network.route(forgery, bypassingTap: true) }
      }
    }
    if drop { return .drop }
    guard copies > 0 || delay > 0, let network = network.withLock({ $0 }) else { return .deliver }
    for _ in 0..<copies {
      // The copy follows the original (same deadline, scheduled after it).
      _ = clock.schedule(at: now &+ delay) { network.route(m, bypassingTap: true) }
    }
    if delay > 0 {
      _ = clock.schedule(at: now &+ delay) { network.route(m, bypassingTap: true) }
      return .drop
    }
    return .deliver
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
    return Int64(ms * 1e6)
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
    case .forgeCancel(let from, let after): parts = ["forged stream_cancel from \(from) after \(after) ms"]
    }
    if !types.isEmpty { parts.append(types.map(\.rawValue).sorted().joined(separator: "|")) }
    if let nth { parts.append("nth=\(nth)") }
    if probability < 1 { parts.append("p=\(probability)") }
    if let (a, b) = between { parts.append("\(a)↔\(b)") }
    if fromMs != nil || untilMs != nil { parts.append("[\(fromMs ?? 0), \(untilMs.map { "\($0)" } ?? "∞")) ms") }
    return parts.joined(separator: " ")
  }
}
