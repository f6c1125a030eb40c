import Foundation
@_spi(Testing) import KenshoHarness
import KenshoProtocol
import KenshoReport
import KenshoScenario
import KenshoVerdict
import Testing

@Suite("Measurement and leak verdict", .serialized)
struct MeasurementTests {
  func load(_ file: String) throws -> Scenario {
    try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(file)").path)
  }

  @Test("KSP-9.2: a reference variant that leaks every ended stream fails the leak verdict")
  func leakingVariantFailsLeakVerdict() throws {
    let scenario = try load("soak-many-streams.json")
    var options = RunOptions()
    options.leakingReference = true
    let leaky = ScenarioRunner(options: options).run(scenario)
    let leak = try #require(leaky.checks.first { $0.name == "no_leak" })
    #expect(leak.verdict == .fail)
    #expect(leak.rule == "KSP-9.2")
    #expect((leaky.metrics.growthPerStream ?? 0) > 64, "the fit sees the leaked entries")
    #expect(leaky.verdict == .fail)
    #expect(leaky.heapProfile != nil, "a failed leak verdict says how to get a heap profile")

    let sound = ScenarioRunner().run(scenario)
    #expect(sound.checks.first { $0.name == "no_leak" }?.verdict == .pass)
    #expect(abs(sound.metrics.growthPerStream ?? 99) < 16)
  }

  @Test("the soak reports memory and activeStreams over time")
  func soakSamplesOverTime() throws {
    let result = ScenarioRunner().run(try load("soak-many-streams.json"))
    #expect(result.samples.count > 20)
    #expect(result.samples.contains { $0.activeStreams == 200 }, "the closed model keeps 200 open")
    #expect(result.samples.allSatisfy { $0.allocated != nil && $0.processResident != nil })
    #expect(result.samples.last?.activeStreams == 0)
    #expect(result.metrics.bytesPerOpenStream != nil)
  }

  @Test("latency is measured: percentiles, corrected and uncorrected, and .hgrm histograms")
  func latencyMeasured() throws {
    let result = ScenarioRunner().run(try load("fanout-one-producer-1000-consumers.json"))
    let latency = try #require(result.metrics.chunkLatency)
    #expect(latency.count == 20_000)
    #expect(latency.p50 <= latency.p99 && latency.p99 <= latency.max)
    #expect(result.metrics.chunkLatencyCorrected?.count == 20_000)
    // Virtual time: each stream completes 200 ms after it was due and gets its first chunk
    // 10 ms after; HdrHistogram keeps 3 significant digits.
    let completion = try #require(result.metrics.streamCompletion)
    let first = try #require(result.metrics.timeToFirstChunk)
    #expect(abs(completion.p50 - 200_000) / 200_000 < 0.001)
    #expect(abs(first.max - 10_000) / 10_000 < 0.001)
    #expect(abs(first.p50 - 10_000) / 10_000 < 0.001)
    #expect(result.histograms["chunk-latency"]?.contains("Percentile") == true)
    #expect(!result.metrics.latencyCurve.isEmpty)
  }
}
