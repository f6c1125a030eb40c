import Foundation
import Histogram
public import KenshoRelay
import NIOCore
import NIOPosix
import Synchronization

/// One step of a relay load test: `clients` connections, each sending at its share of
/// `offeredPerSecond` (an open model: on schedule, whatever the relay does), for `seconds`.
public struct RelayLoadStep: Sendable, Codable, Hashable {
  public var clients: Int
  /// Frames sent per second by all clients together, as scheduled.
  public var offeredPerSecond: Double
  /// Frames sent per second, as achieved.
  public var sentPerSecond: Double
  /// Frames received per second by all clients together (each frame reaches clients − 1).
  public var forwardedPerSecond: Double
  /// Deliveries that never came: sent × (clients − 1) − received, after a drain.
  public var lost: Int
  /// Latency from the sender's scheduled send time to receipt, µs (corrected for coordinated
  /// omission: a late send counts its lateness).
  public var p50Us: Double
  public var p99Us: Double
  public var p999Us: Double
  public var maxUs: Double
  /// The relay process's CPU time (user and system) per frame forwarded in the step, µs; known
  /// only for a relay the harness started (`--relay-cmd`), whose process it can read.
  public var relayCpuUsPerFrame: Double?
}

/// A relay's capacity: the steps of the ramp at each client count, and where it stopped.
public struct RelayLoadResult: Sendable, Codable, Hashable {
  public var relay: String
  public var steps: [RelayLoadStep]
  /// For each client count, the highest forwarded rate of a step within the bound, no frame lost.
  public var capacity: [Int: Double]
  /// Why each client count's ramp stopped.
  public var stoppedBecause: [Int: String]
  /// For each client count, the relay's CPU µs per forwarded frame at its capacity step, when
  /// known: what a relay costs per frame whatever the load generator can offer on this machine.
  public var cpuUsPerFrame: [Int: Double] = [:]
}

/// Ramps clients and offered rate against one relay until p99 latency passes a bound or frames
/// are lost, measuring throughput and latency (HDR histogram) at each step.
public struct RelayLoad: Sendable {
  public var clientCounts: [Int] = [2, 10, 50]
  /// The first offered rate (frames/s, all clients); each step doubles it.
  public var startRate: Double = 1_000
  public var maxRate: Double = 2_000_000
  public var stepSeconds: Double = 2
  public var p99Bound: Duration = .milliseconds(50)
  public var frameBytes = 200
  public var token: String?
  /// Steps that halve the interval between the last rate within the bound and the first past
  /// it, once the doubling has stopped: without them, two relays whose capacities differ by
  /// less than a factor of 2 tie.
  public var refineSteps = 3
  /// The share of the offered rate the generator must send for a step to count: below it, the
  /// generator, not the relay, is the limit.
  public var minimumSentShare = 0.9

  public init() {}

  /// `cpu`: the relay process's CPU seconds so far, when the harness can read them.
  public func run(url: RelayURL, name: String, cpu: (@Sendable () -> Double?)? = nil) async -> RelayLoadResult {
    var result = RelayLoadResult(relay: name, steps: [], capacity: [:], stoppedBecause: [:])
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    for clients in clientCounts {
      let (steps, capacity, why) = await ramp(clients: clients) { rate in
        await step(url: url, clients: clients, rate: rate, group: group, cpu: cpu)
      }
      result.steps += steps
      result.capacity[clients] = capacity
      result.stoppedBecause[clients] = why
      if capacity > 0, let at = steps.first(where: { $0.forwardedPerSecond == capacity })?.relayCpuUsPerFrame {
        result.cpuUsPerFrame[clients] = at
      }
    }
    try? await group.shutdownGracefully()
    return result
  }

  /// One client count's ramp, `measure` running a step at a rate (nil: the clients could not
  /// connect): the steps, the capacity (the highest forwarded rate of a step within the bound)
  /// and why it stopped.
  func ramp(clients: Int, measure: (Double) async -> RelayLoadStep?) async -> (
    steps: [RelayLoadStep], capacity: Double, stoppedBecause: String
  ) {
    var steps: [RelayLoadStep] = []
    var rate = startRate
    var best = 0.0
    var why = "reached the highest rate tried"
    var passed: Double?
    var failed: Double?
    while rate <= maxRate {
      guard let step = await measure(rate) else { return (steps, best, "could not connect \(clients) clients") }
      steps.append(step)
      if let failure = failure(of: step) {
        why = failure
        // A generator short of its rate lost nothing: what was forwarded still counts.
        if step.lost == 0 && step.p99Us <= Double(p99Bound.nanoseconds) / 1_000 {
          best = max(best, step.forwardedPerSecond)
        }
        failed = rate
        break
      }
      best = max(best, step.forwardedPerSecond)
      passed = rate
      rate *= 2
    }
    // Between the last rate within the bound and the first past it.
    if var low = passed, var high = failed {
      for _ in 0..<refineSteps {
        let middle = (low + high) / 2
        guard let step = await measure(middle) else { break }
        steps.append(step)
        if failure(of: step) == nil {
          best = max(best, step.forwardedPerSecond)
          low = middle
        } else {
          high = middle
        }
      }
      why += "; capacity between \(Int(low)) and \(Int(high)) frames/s offered"
    }
    return (steps, best, why)
  }

  /// Why a step is past the relay's capacity (a frame lost, p99 above the bound, the generator
  /// short of its rate), or nil.
  func failure(of step: RelayLoadStep) -> String? {
    let boundUs = Double(p99Bound.nanoseconds) / 1_000
    let rate = Int(step.offeredPerSecond)
    if step.lost > 0 { return "\(step.lost) frames lost at \(rate) frames/s offered" }
    if step.p99Us > boundUs {
      return "p99 \(Int(step.p99Us / 1_000)) ms above \(Int(boundUs / 1_000)) ms at \(rate) frames/s offered"
    }
    if step.sentPerSecond < minimumSentShare * step.offeredPerSecond {
      return "the load generator could send only \(Int(step.sentPerSecond))/s of \(rate)/s"
    }
    return nil
  }

  /// Counts and latencies of one receiving client.
  final class Receiver: Sendable {
    let state = Mutex<(count: Int, histogram: Histogram<UInt64>)>(
      (0, Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .two)))
    let origin: ContinuousClock.Instant

    init(origin: ContinuousClock.Instant) { self.origin = origin }

    func handle(_ event: RelayEvent) {
      guard case .frame(false, var bytes) = event, let scheduled = bytes.readInteger(as: Int64.self) else { return }
      let now = (ContinuousClock.now - origin).nanoseconds
      state.withLock { s in
        s.count += 1
        s.histogram.record(UInt64(max(0, now - scheduled)))
      }
    }
  }

  func step(
    url: RelayURL, clients: Int, rate: Double, group: any EventLoopGroup, cpu: (@Sendable () -> Double?)? = nil
  ) async -> RelayLoadStep? {
    let origin = ContinuousClock.now
    var connections: [(RelayClient, Receiver)] = []
    defer { for (c, _) in connections { c.close() } }
    for i in 0..<clients {
      let receiver = Receiver(origin: origin)
      guard
        let client = try? await RelayClient.connect(
          to: url, token: token, label: "load-\(i)", deadline: .seconds(10), group: group,
          handler: receiver.handle)
      else { return nil }
      connections.append((client, receiver))
    }
    try? await Task.sleep(for: .milliseconds(200))  // server_info frames come and go
    for (_, r) in connections {
      r.state.withLock { s in
        s.count = 0
        s.histogram.reset()
      }
    }
    let cpuBefore = cpu?()
    // Each tick sends what the schedule says is due, stamped with its scheduled time.
    let interval = 1.0 / rate
    let total = Int(rate * stepSeconds)
    let padding = [UInt8](repeating: 0x78, count: max(0, frameBytes - 8))
    var sent = 0
    let started = ContinuousClock.now
    let startNs = (started - origin).nanoseconds
    while sent < total {
      let elapsed = Double((ContinuousClock.now - started).nanoseconds) / 1e9
      let due = min(total, Int(elapsed / interval) + 1)
      if due > sent {
        var batches = [[ByteBuffer]](repeating: [], count: clients)
        for k in sent..<due {
          var b = ByteBuffer()
          b.writeInteger(startNs + Int64(Double(k) * interval * 1e9))
          b.writeBytes(padding)
          batches[k % clients].append(b)
        }
        for (i, batch) in batches.enumerated() where !batch.isEmpty {
          connections[i].0.send(batch: batch, text: false)
        }
        sent = due
      } else {
        try? await Task.sleep(for: .microseconds(500))
      }
    }
    let sendSeconds = max(Double((ContinuousClock.now - started).nanoseconds) / 1e9, 1e-9)
    let expected = sent * (clients - 1)
    // Drain: until everything arrived, or 2 s without progress.
    var last = -1
    var quietSince = ContinuousClock.now
    while true {
      let received = connections.reduce(0) { $0 + $1.1.state.withLock { $0.count } }
      if received >= expected { break }
      if received != last {
        last = received
        quietSince = .now
      } else if ContinuousClock.now - quietSince > .seconds(2) {
        break
      }
      try? await Task.sleep(for: .milliseconds(20))
    }
    let receiveSeconds = max(Double((ContinuousClock.now - started).nanoseconds) / 1e9, 1e-9)
    var merged = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .two)
    var received = 0
    for (_, r) in connections {
      r.state.withLock { s in
        received += s.count
        merged.add(s.histogram)
      }
    }
    func us(_ v: UInt64) -> Double { Double(v) / 1_000 }
    var relayCpu: Double?
    if let cpuBefore, let cpuAfter = cpu?(), received > 0 {
      relayCpu = max(0, cpuAfter - cpuBefore) * 1e6 / Double(received)
    }
    return RelayLoadStep(
      clients: clients, offeredPerSecond: rate, sentPerSecond: Double(sent) / sendSeconds,
      forwardedPerSecond: Double(received) / receiveSeconds, lost: max(0, expected - received),
      p50Us: us(merged.valueAtPercentile(50)), p99Us: us(merged.valueAtPercentile(99)),
      p999Us: us(merged.valueAtPercentile(99.9)), maxUs: us(merged.max), relayCpuUsPerFrame: relayCpu)
  }
}
