import ArgumentParser
import Foundation
import Histogram
import KenshoBus
import KenshoMemory
import KenshoProtocol
import Synchronization

/// Measures the reference bus in process: throughput on one stream and over many, per-chunk
/// latency, and memory per idle open stream. Run it on a release build:
///
///     swift run -c release kensho-bus-bench
@main
struct BusBenchmark: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kensho-bus-bench",
    abstract: "Throughput, latency and memory of the reference KSP/1 bus, in process.")

  @Option(help: "Repetitions of each measurement; the median is reported.")
  var runs = 5

  @Option(help: "Chunks sent on the single stream per repetition.")
  var chunks = 5_000_000

  @Option(help: "Concurrent streams for the aggregate and memory measurements.")
  var streams = 10_000

  @Option(help: "Chunks per stream in the aggregate measurement.")
  var rounds = 200

  @Flag(help: "Print the results as one JSON object as well.")
  var json = false

  @Option(
    help:
      "Run only these measurements (single, json, aggregate, latency, record, memory, e2e), comma-separated.")
  var only: String?

  @Option(help: "Chunks per stream (8 streams) in the end-to-end measurement through the harness.")
  var e2eChunks = 50_000

  @Option(help: "The adapter for the end-to-end measurement; default: kensho-ref-adapter beside this program.")
  var adapter: String?

  /// A program built beside this one.
  static func sibling(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
      .appendingPathComponent(name).path
  }

  func selected(_ name: String) -> Bool {
    guard let only else { return true }
    return only.split(separator: ",").contains { $0 == name }
  }

  mutating func validate() throws {
    guard runs >= 1, chunks >= 1, streams >= 1, rounds >= 1 else {
      throw ValidationError("--runs, --chunks, --streams and --rounds must be at least 1")
    }
  }

  func run() throws {
    #if DEBUG
      print("warning: a debug build; benchmark figures mean nothing unless built with -c release")
    #endif
    guard Jemalloc.snapshot() != nil else {
      throw ValidationError("jemalloc statistics are unavailable: is libjemalloc linked?")
    }
    print("kensho-bus-bench: \(runs) runs each, medians (min..max); jemalloc \(Jemalloc.version ?? "?")")

    var results: [String: Double] = [:]
    func report(_ key: String, _ label: String, _ unit: String, _ samples: [Double], scale: Double = 1) {
      let sorted = samples.sorted()
      let median = sorted[sorted.count / 2]
      results[key] = median
      let fmt = { (v: Double) in String(format: "%.2f", v / scale) }
      print(
        "  \(label.padding(toLength: 48, withPad: " ", startingAt: 0)) \(fmt(median)) \(unit)"
          + "  (\(fmt(sorted.first ?? 0))..\(fmt(sorted.last ?? 0)))")
    }

    // Throughput: one stream, in process, and the same path with JSON per message as baseline.
    if selected("single") {
      let single = try (0..<runs).map { _ in try singleStream(chunks: chunks) }
      report("single_stream_chunks_per_s", "one stream, in process", "M chunks/s", single, scale: 1e6)
    }
    if selected("json") {
      let jsonChunks = max(1, chunks / 20)
      let viaJSON = try (0..<runs).map { _ in try singleStream(chunks: jsonChunks, encodeJSON: true) }
      report("json_baseline_chunks_per_s", "one stream, JSON per message (baseline)", "M chunks/s", viaJSON, scale: 1e6)
      let ratio = (results["single_stream_chunks_per_s"] ?? 0) / max(1, results["json_baseline_chunks_per_s"] ?? 1)
      results["in_process_vs_json_ratio"] = ratio
      print(
        "  \("in process / JSON baseline".padding(toLength: 48, withPad: " ", startingAt: 0)) \(String(format: "%.1f", ratio))x"
      )
    }
    if selected("aggregate") {
      let aggregate = try (0..<runs).map { _ in try manyStreams(streams: streams, rounds: rounds) }
      report(
        "aggregate_chunks_per_s", "\(streams) concurrent streams, aggregate", "M chunks/s", aggregate, scale: 1e6)
    }
    if selected("latency") {
      // Latency: emit to onChunk, on one stream and round-robin over many.
      let latencies = try (0..<runs).map { _ in try latency(chunks: min(chunks, 1_000_000)) }
      report("latency_p50_ns", "per-chunk latency p50", "ns", latencies.map(\.p50))
      report("latency_p99_ns", "per-chunk latency p99", "ns", latencies.map(\.p99))
      report("latency_p999_ns", "per-chunk latency p99.9", "ns", latencies.map(\.p999))
    }
    if selected("record") {
      let costs = (0..<runs).map { _ in recordCost(samples: 10_000_000) }
      report("latency_record_ns", "cost of recording one latency sample", "ns", costs)
    }
    if selected("memory") {
      // Memory: bytes per idle open stream, and what is left once they all ended.
      let memory = try (0..<runs).map { _ in try idleMemory(streams: streams) }
      report(
        "consumer_bytes_per_idle_stream", "bytes per idle stream, consumer (activeStreams)", "B", memory.map(\.consumer)
      )
      report("total_bytes_per_idle_stream", "bytes per idle stream, consumer + producer", "B", memory.map(\.total))
      report("retained_after_end_bytes", "retained after all \(streams) streams ended", "B", memory.map(\.retained))
    }

    if selected("e2e") {
      // End to end through the harness, real time, as fast as it goes: the reference in process,
      // the same through its adapter (operations pipelined), and through the adapter with every
      // line read by the general checker (the baseline of the hot path), interleaved in one run.
      let command = adapter ?? Self.sibling("kensho-ref-adapter")
      var inProcess: [Throughput] = []
      var through: [Throughput] = []
      var general: [Throughput] = []
      for _ in 0..<runs {
        inProcess.append(try throughput(streams: 8, chunks: e2eChunks, adapter: nil))
        through.append(try throughput(streams: 8, chunks: e2eChunks, adapter: command))
        general.append(try throughput(streams: 8, chunks: e2eChunks, adapter: command, hotLines: false))
      }
      report(
        "e2e_in_process_messages_per_s", "harness, in process (chunks sent + delivered)", "k msg/s",
        inProcess.map(\.messagesPerSecond), scale: 1e3)
      report(
        "e2e_adapter_messages_per_s", "harness, through the adapter (pipelined)", "k msg/s",
        through.map(\.messagesPerSecond), scale: 1e3)
      report(
        "e2e_adapter_harness_us_per_message", "harness CPU per message, through the adapter", "µs",
        through.map(\.harnessMicrosPerMessage))
      report(
        "e2e_adapter_adapter_us_per_message", "adapter processes' CPU per message", "µs",
        through.map(\.adapterMicrosPerMessage))
      report(
        "e2e_adapter_general_messages_per_s", "through the adapter, every line by the general checker", "k msg/s",
        general.map(\.messagesPerSecond), scale: 1e3)
      report(
        "e2e_adapter_general_harness_us_per_message", "harness CPU per message, general checker only", "µs",
        general.map(\.harnessMicrosPerMessage))
      func ratio(_ name: String, _ a: String, _ b: String, _ text: String) {
        let r = (results[a] ?? 0) / max(1e-9, results[b] ?? 1)
        results[name] = r
        print("  \(text.padding(toLength: 48, withPad: " ", startingAt: 0)) " + String(format: "%.2f", r) + "x")
      }
      ratio(
        "e2e_adapter_vs_in_process_ratio", "e2e_adapter_messages_per_s", "e2e_in_process_messages_per_s",
        "through the adapter / in process")
      ratio(
        "e2e_hot_path_speedup", "e2e_adapter_messages_per_s", "e2e_adapter_general_messages_per_s",
        "hot path / general checker (msg/s)")
    }

    if json {
      let data = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    }
  }
}

/// A pair of buses, `consumer` and `producer`, on one in-process network.
final class Pair: Sendable {
  let network: LocalNetwork
  let consumer: MessageBus
  let producer: MessageBus
  let emitters = Mutex<[StreamEmitter]>([])

  init(encodeJSON: Bool = false) throws {
    if encodeJSON {
      // Baseline: every message is encoded to JSON and decoded again, as across a process.
      network = LocalNetwork(tap: { m in
        guard let data = try? KenshoCodec.encode(m), case .success = KenshoCodec.decode(data) else { return .drop }
        return .deliver
      })
    } else {
      network = LocalNetwork()
    }
    consumer = try MessageBus(name: "consumer", transport: network.endpoint("consumer"))
    producer = try MessageBus(name: "producer", transport: network.endpoint("producer"))
    producer.registerStreamMethod("hold") { [self] _, stream in emitters.withLock { $0.append(stream) } }
  }

  func dispose() {
    consumer.dispose()
    producer.dispose()
  }
}

/// Counts chunks with a relaxed atomic, shared by every stream's callbacks.
final class Tally: Sendable {
  let chunks = Atomic<Int>(0)
  let ends = Atomic<Int>(0)
  var callbacks: StreamCallbacks {
    StreamCallbacks(
      onChunk: { _ in self.chunks.wrappingAdd(1, ordering: .relaxed) },
      onEnd: { _ in self.ends.wrappingAdd(1, ordering: .relaxed) },
      onError: { _ in self.ends.wrappingAdd(1, ordering: .relaxed) })
  }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
  let start = ContinuousClock.now
  try body()
  let elapsed = ContinuousClock.now - start
  return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}

enum BenchFailure: Error, CustomStringConvertible {
  case lost(expected: Int, got: Int)
  var description: String {
    switch self {
    case .lost(let expected, let got): "expected \(expected) chunks, received \(got)"
    }
  }
}

func singleStream(chunks: Int, encodeJSON: Bool = false) throws -> Double {
  let pair = try Pair(encodeJSON: encodeJSON)
  defer { pair.dispose() }
  let tally = Tally()
  try pair.consumer.callStream("producer", method: "hold", args: .null, callbacks: tally.callbacks)
  guard let emitter = pair.emitters.withLock({ $0.first }) else { return 0 }
  let elapsed = try seconds {
    for i in 0..<chunks { try emitter.chunk(.int(Int64(i))) }
    try emitter.end()
  }
  let got = tally.chunks.load(ordering: .relaxed)
  guard got == chunks else { throw BenchFailure.lost(expected: chunks, got: got) }
  return Double(chunks) / elapsed
}

func manyStreams(streams: Int, rounds: Int) throws -> Double {
  let pair = try Pair()
  defer { pair.dispose() }
  let tally = Tally()
  for _ in 0..<streams {
    try pair.consumer.callStream("producer", method: "hold", args: .null, callbacks: tally.callbacks)
  }
  let emitters = pair.emitters.withLock { $0 }
  let elapsed = try seconds {
    for round in 0..<rounds {
      let payload = JSONValue.int(Int64(round))
      for e in emitters { try e.chunk(payload) }
    }
    for e in emitters { try e.end() }
  }
  let got = tally.chunks.load(ordering: .relaxed)
  guard got == streams * rounds else { throw BenchFailure.lost(expected: streams * rounds, got: got) }
  return Double(streams * rounds) / elapsed
}

struct Latency {
  var p50: Double
  var p99: Double
  var p999: Double
}

/// Emit-to-callback latency: each chunk carries its emit time; the callback records the gap.
func latency(chunks: Int) throws -> Latency {
  let pair = try Pair()
  defer { pair.dispose() }
  let histogram = Mutex(
    Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three))
  let clock = SystemClock.shared
  try pair.consumer.callStream(
    "producer", method: "hold", args: .null,
    callbacks: StreamCallbacks(onChunk: { value in
      let sent = value.intValue ?? 0
      let gap = UInt64(max(0, clock.nanoseconds() - sent))
      histogram.withLock { _ = $0.record(gap) }
    }))
  guard let emitter = pair.emitters.withLock({ $0.first }) else { return Latency(p50: 0, p99: 0, p999: 0) }
  for _ in 0..<chunks { try emitter.chunk(.int(clock.nanoseconds())) }
  try emitter.end()
  return histogram.withLock { h in
    Latency(
      p50: Double(h.valueAtPercentile(50)), p99: Double(h.valueAtPercentile(99)),
      p999: Double(h.valueAtPercentile(99.9)))
  }
}

struct Memory {
  var consumer: Double
  var total: Double
  var retained: Double
}

/// Bytes per idle open stream, from jemalloc's `stats.allocated`: first with streams whose
/// request goes nowhere (only the consumer's `activeStreams` entry exists), then with a
/// producer holding an emitter for each. Then every stream ends and we look at what is left.
func idleMemory(streams: Int) throws -> Memory {
  let network = LocalNetwork()
  let consumer = try MessageBus(name: "consumer", transport: network.endpoint("consumer"))
  let producer = try MessageBus(name: "producer", transport: network.endpoint("producer"))
  let kept = Mutex<[StreamEmitter]>([])
  kept.withLock { $0.reserveCapacity(streams) }
  producer.registerStreamMethod("hold") { _, stream in kept.withLock { $0.append(stream) } }
  let tally = Tally()
  let callbacks = tally.callbacks
  defer {
    consumer.dispose()
    producer.dispose()
  }
  // Warm-up, so that one-off allocations (duplicate window, first tables) are in the baseline.
  for _ in 0..<2_000 { try consumer.callStream("producer", method: "hold", args: .null, callbacks: callbacks) }
  for e in kept.withLock({ $0 }) { try e.end() }
  kept.withLock { $0.removeAll(keepingCapacity: true) }

  var ids: [String] = []
  ids.reserveCapacity(streams)
  let afterReserve = Jemalloc.allocated() ?? 0
  for _ in 0..<streams {
    ids.append(try consumer.callStream("nobody", method: "hold", args: .null, callbacks: callbacks))
  }
  let consumerOnly = Jemalloc.allocated() ?? 0
  for id in ids { consumer.cancelStream(id) }

  for _ in 0..<streams { try consumer.callStream("producer", method: "hold", args: .null, callbacks: callbacks) }
  let both = Jemalloc.allocated() ?? 0
  for e in kept.withLock({ $0 }) { try e.end() }
  kept.withLock { $0.removeAll(keepingCapacity: true) }
  ids.removeAll(keepingCapacity: true)
  let end = Jemalloc.allocated() ?? 0
  return Memory(
    consumer: Double(consumerOnly - afterReserve) / Double(streams),
    total: Double(both - afterReserve) / Double(streams),
    retained: Double(end - afterReserve))
}

/// What the harness pays per latency sample: a clock reading and an HdrHistogram record.
func recordCost(samples: Int) -> Double {
  var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
  let clock = SystemClock.shared
  let start = clock.nanoseconds()
  var previous = start
  for _ in 0..<samples {
    let now = clock.nanoseconds()
    _ = histogram.record(UInt64(now - previous))
    previous = now
  }
  let elapsed = clock.nanoseconds() - start
  precondition(histogram.totalCount == UInt64(samples))
  return Double(elapsed) / Double(samples)
}
