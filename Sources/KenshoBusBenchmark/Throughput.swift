import Foundation
import KenshoHarness
import KenshoScenario

#if canImport(Glibc)
  import Glibc
#endif

/// End to end through the harness: a real-time scenario of `streams` streams of `chunks`
/// chunks each, as fast as they go, in process or through an adapter process (pipelined).
struct Throughput {
  /// Chunks sent plus chunks delivered, a second of wall time.
  var messagesPerSecond: Double
  /// The harness's own CPU time (this process, every thread) per message, µs.
  var harnessMicrosPerMessage: Double
  /// The adapter processes' CPU time per message, µs (zero in process).
  var adapterMicrosPerMessage: Double
}

/// CPU time of this process and of its reaped children, in seconds.
func cpuSeconds() -> (own: Double, children: Double) {
  func seconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(who), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
      + Double(usage.ru_stime.tv_usec) / 1e6
  }
  return (seconds(RUSAGE_SELF.rawValue), seconds(RUSAGE_CHILDREN.rawValue))
}

struct BenchmarkFailure: Error, CustomStringConvertible {
  var description: String
}

func throughput(streams: Int, chunks: Int, adapter: String?, hotLines: Bool = true) throws -> Throughput {
  let total = streams * chunks
  let text = """
    {"format": "kensho-scenario/1", "name": "bench-throughput", "time": {"mode": "real", "deadlineMs": 600000},
     "agents": [
       {"name": "producer", "methods": {"firehose": {"chunks": \(chunks),
         "content": {"kind": "values", "values": [{"token": "a"}, {"token": "bb"}, {"token": "ccc"}]}}}},
       {"name": "consumer"}],
     "workload": [{"consumers": "consumer", "producers": "producer", "method": "firehose", "streams": \(streams)}],
     "expect": [{"check": "ordered_delivery"}, {"metric": "chunks_delivered", "min": \(total), "max": \(total)}]}
    """
  let scenario = try ScenarioLoader.load(data: Data(text.utf8), file: "bench-throughput")
  var options = RunOptions(measure: false)
  options.adapterCommand = adapter
  options.hotLines = hotLines
  let before = cpuSeconds()
  let result = ScenarioRunner(wallDeadline: .seconds(600), options: options).run(scenario)
  let after = cpuSeconds()
  guard result.verdict == .pass, result.metrics.wallSeconds > 0 else {
    let why = result.error ?? result.checks.filter { $0.verdict != .pass }.map(\.observed).joined(separator: "; ")
    throw BenchmarkFailure(description: "the throughput run did not pass (\(result.verdict)): \(why)")
  }
  let messages = Double(result.metrics.chunksEmitted + result.metrics.chunksDelivered)
  return Throughput(
    messagesPerSecond: messages / result.metrics.wallSeconds,
    harnessMicrosPerMessage: (after.own - before.own) * 1e6 / messages,
    adapterMicrosPerMessage: (after.children - before.children) * 1e6 / messages)
}
