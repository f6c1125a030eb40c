import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
@_spi(Testing) import KenshoBus
import KenshoMemory
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// Sampling over time: active streams, emitters, memory and latency windows.
extension ReferenceRun {
  // MARK: Sampling

  func scheduleSampling() {
    let every = Nanos.from(ms: scenario.time.sampleEveryMs)
    _ = clock.schedule(at: clock.nanoseconds() &+ every) { [self] in
      guard !state.withLock({ $0.stopSampling || $0.done }) else { return }
      sample()
      scheduleSampling()
    }
  }

  func sample() {
    guard options.measure else { return }
    var active = 0
    var emitters = 0
    for (name, bus) in buses where !state.withLock({ $0.crashed.contains(name) }) {
      let stats = bus.stats
      active += stats.activeStreams
      emitters += stats.emitters
    }
    let t = Double(clock.nanoseconds()) / 1e6
    let process = Jemalloc.snapshot()
    state.withLock { s in
      let allocated = s.memory?.current()
      if s.samples.count >= 4096 {
        s.samples = s.samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
      }
      let window = s.windowLatency
      s.samples.append(
        Sample(
          t: t, activeStreams: active, emitters: emitters, allocated: allocated, chunksDelivered: s.delivered,
          streamsCompleted: s.completed, processAllocated: process?.allocated, processActive: process?.active,
          processResident: process?.resident,
          latencyP50Us: window.totalCount > 0 ? Double(window.valueAtPercentile(50)) / 1_000 : nil,
          latencyP99Us: window.totalCount > 0 ? Double(window.valueAtPercentile(99)) / 1_000 : nil))
      s.windowLatency.reset()
    }
  }

  static func brief(_ v: JSONValue) -> String {
    let text = (try? KenshoCodec.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "\(v)"
    return text.count > 60 ? String(text.prefix(60)) + "…" : text
  }
}

/// Memory above a baseline: this thread's net allocations in virtual time (exact, whatever
/// other threads do), the process's `stats.allocated` in real time.
final class MemoryMeter: Sendable {
  let threadLocal: Bool
  let enabled: Bool
  /// What the harness itself holds and must not be blamed on the bus (the run's history).
  let excluding: @Sendable () -> Int64
  private let marks = Mutex<(base: Int64, peak: Int64, end: Int64?)>((0, 0, nil))

  init(threadLocal: Bool, enabled: Bool = true, excluding: @escaping @Sendable () -> Int64 = { 0 }) {
    self.threadLocal = threadLocal
    self.enabled = enabled
    self.excluding = excluding
  }

  var source: String { threadLocal ? "thread" : "process" }

  private func read() -> Int64? {
    guard enabled else { return nil }
    let raw = threadLocal ? Jemalloc.threadNet() : Jemalloc.allocated().map(Int64.init)
    return raw.map { $0 - excluding() }
  }

  func markBaseline() {
    let now = read() ?? 0
    marks.withLock { $0 = (now, 0, nil) }
  }

  func current() -> Int? {
    guard let now = read() else { return nil }
    return marks.withLock { m in
      m.peak = max(m.peak, now - m.base)
      return Int(now - m.base)
    }
  }

  func samplePeak() { _ = current() }

  func markEnd() {
    guard let now = read() else { return }
    marks.withLock { m in
      m.peak = max(m.peak, now - m.base)
      m.end = now - m.base
    }
  }

  var retained: Int? { marks.withLock { $0.end.map(Int.init) } }
  var peak: Int { marks.withLock { Int($0.peak) } }
  var available: Bool { read() != nil }
}
