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
      let reading = s.memory?.current()
      let allocated = reading?.bytes
      if reading?.warm == true, s.warmSamplesFromMs == nil { s.warmSamplesFromMs = t }
      if s.samples.count >= 4096 {
        s.samples = s.samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
      }
      let window = s.windowLatency
      s.samples.append(
        Sample(
          t: t, activeStreams: active, emitters: emitters, allocated: allocated, chunksDelivered: s.delivered,
          streamsCompleted: s.completed, openStreams: s.opened - s.completed, processAllocated: process?.allocated,
          processActive: process?.active,
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

/// Memory above a baseline. In process: this thread's net allocations in virtual time (exact,
/// whatever other threads do), the process's `stats.allocated` in real time, less what the
/// harness itself holds. Through adapters: what the implementation's processes report or the
/// kernel says of them (``AdapterHost/memory()``), with the spread of readings at rest as a
/// noise floor.
final class MemoryMeter: Sendable {
  let enabled: Bool
  /// How memory is measured, for reports.
  var source: String {
    guard warmUpStreams > 0 || warmUpChunks > 0 else { return what }
    let after = [
      warmUpStreams > 0 ? "\(warmUpStreams) streams completed" : nil,
      warmUpChunks > 0 ? "\(warmUpChunks) chunks delivered" : nil,
    ].compactMap { $0 }.joined(separator: " or ")
    return "\(what); baseline taken again after a warm-up of \(after), whichever came first"
  }
  private let what: String
  /// Reads memory; `fresh` asks for a new reading where readings are rationed, and `new` says
  /// whether the reading was taken now (or is the last one given again).
  private let reader: @Sendable (_ fresh: Bool) -> (bytes: Int64, new: Bool)?
  /// Streams completed, or chunks delivered, after which the baseline is taken again (0: never):
  /// a runtime with a compiler and lazily built tables grows once as code paths are first used,
  /// which is not memory the streams retain.
  let warmUpStreams: Int
  let warmUpChunks: Int
  private let rebased = Mutex(false)
  /// Readings taken at rest for the baseline; their spread is the noise floor.
  private let restingReadings: Int
  /// `epoch` counts the baselines taken (the warm-up's is the second).
  private let marks = Mutex<(base: Int64, peak: Int64, end: Int64?, floor: Int64, epoch: Int)>((0, 0, nil, 0, 0))

  /// The harness's own allocator: `excluding` is what the harness itself holds and must not be
  /// blamed on the bus (the run's history).
  init(threadLocal: Bool, enabled: Bool = true, excluding: @escaping @Sendable () -> Int64 = { 0 }) {
    self.enabled = enabled
    self.what = threadLocal ? "thread" : "process"
    self.restingReadings = 1
    self.warmUpStreams = 0
    self.warmUpChunks = 0
    self.reader = { _ in
      let raw = threadLocal ? Jemalloc.threadNet() : Jemalloc.allocated().map(Int64.init)
      return raw.map { ($0 - excluding(), true) }
    }
  }

  /// Memory read by `read`, described by `source`; the baseline is the last of three readings
  /// at rest, and their spread the noise floor; it is taken again once `warmUp` streams have
  /// completed.
  init(
    source: String, enabled: Bool, warmUpStreams: Int, warmUpChunks: Int,
    read: @escaping @Sendable (_ fresh: Bool) -> (bytes: Int64, new: Bool)?
  ) {
    self.enabled = enabled
    self.what = source
    self.restingReadings = 3
    self.warmUpStreams = warmUpStreams
    self.warmUpChunks = warmUpChunks
    self.reader = read
  }

  private func read(fresh: Bool = false) -> Int64? { enabled ? reader(fresh)?.bytes : nil }

  /// Takes the baseline again, once: the implementation has warmed up.
  func passWarmUp() {
    guard
      rebased.withLock({ r in
        defer { r = true }
        return !r
      }),
      let now = read(fresh: true)
    else { return }
    marks.withLock { m in
      m.base = now
      m.peak = 0
      m.epoch += 1
    }
  }

  func markBaseline() {
    var readings: [Int64] = []
    for _ in 0..<restingReadings { if let r = read(fresh: true) { readings.append(r) } }
    let now = readings.last ?? 0
    let floor = (readings.max() ?? 0) - (readings.min() ?? 0)
    marks.withLock { $0 = (now, 0, nil, floor, 0) }
  }

  /// The spread of the readings at rest before the run, bytes (0 for the harness's allocator,
  /// which is exact).
  var noiseFloor: Int { marks.withLock { Int($0.floor) } }

  /// Memory above the baseline now, for a sample: nil when no reading was taken at this moment
  /// (a rationed reading given again would pair old memory with new work). `warm`: taken after
  /// the warm-up's baseline, or with no warm-up to wait for.
  func current() -> (bytes: Int, warm: Bool)? {
    guard enabled, let reading = reader(false) else { return nil }
    return marks.withLock { m in
      m.peak = max(m.peak, reading.bytes - m.base)
      guard reading.new else { return nil }
      return (Int(reading.bytes - m.base), m.epoch > 0 || (warmUpStreams == 0 && warmUpChunks == 0))
    }
  }

  func samplePeak() { _ = current() }

  func markEnd() {
    guard let now = read(fresh: true) else { return }
    marks.withLock { m in
      m.peak = max(m.peak, now - m.base)
      m.end = now - m.base
    }
  }

  var retained: Int? { marks.withLock { $0.end.map(Int.init) } }
  var peak: Int { marks.withLock { Int($0.peak) } }
  var available: Bool { read() != nil }
}
