import Foundation
import KenshoHarness
import KenshoScenario
import KenshoVerdict
import Testing

/// The package's root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

/// Every scenario file in Scenarios/: adding a file adds a test.
func scenarioFiles() -> [String] {
  let folder = packageRoot.appendingPathComponent("Scenarios").path
  return ((try? ScenarioLoader.files(in: [folder])) ?? []).map { ($0 as NSString).lastPathComponent }
}

/// Every scenario against the reference bus, with measurement off. The main job
/// (`kensho-bench Scenarios/`, which `.ci/run` runs after the tests and which fails CI on
/// anything but a pass) runs the same files with measurement on: together they show that the
/// suite passes, and that measuring never changes a verdict, without running it twice here.
@Suite("Scenario suite (end to end)", .serialized)
struct ScenarioSuiteTests {
  @Test(
    "the scenario passes against the reference bus, with measurement off (no memory, no latency)",
    arguments: scenarioFiles())
  func scenarioPasses(_ file: String) throws {
    let path = packageRoot.appendingPathComponent("Scenarios").appendingPathComponent(file).path
    let scenario = try ScenarioLoader.load(file: path)
    let result = ScenarioRunner(wallDeadline: .seconds(240), options: RunOptions(measure: false)).run(scenario)
    // Without measurement the memory checks are UNSUPPORTED and the latency bounds UNTESTED
    // (nothing measured); every other check passes.
    func excused(_ check: CheckResult) -> Bool {
      check.verdict == .unsupported || (check.verdict == .untested && check.rule == "PERF")
    }
    for check in result.checks where check.verdict != .pass && !excused(check) {
      Issue.record(
        "\(check.rule) \(check.name): expected \(check.expected); observed \(check.observed) \(check.detail ?? "")")
    }
    #expect(result.verdict.isSuccess && result.verdict != .nonStrict)
    #expect(result.error == nil)
    #expect(result.metrics.streamsCompleted == result.metrics.streamsOpened)
    #expect(result.metrics.chunkLatency == nil && result.samples.isEmpty)
  }

  @Test("the suite covers every scenario the issue names")
  func suiteIsComplete() {
    let files = Set(scenarioFiles())
    for required in [
      "ordering-seed.json", "ordering-large-count.json", "fanout-one-producer-1000-consumers.json",
      "fanout-one-consumer-50-producers.json", "producer-crash-announced.json", "producer-crash-silent.json",
      "idle-timeout-default.json", "idle-timeout-per-stream.json", "error-explicit-code.json", "error-thrown.json",
      "error-unknown-method.json", "large-file-chunking.json", "cancellation.json", "callbacks-that-throw.json",
      "soak-long-streams.json",
    ] {
      #expect(files.contains(required), "Scenarios/\(required) is missing")
    }
  }
}
