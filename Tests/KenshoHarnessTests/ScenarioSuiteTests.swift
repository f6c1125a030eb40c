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

@Suite("Scenario suite (end to end)", .serialized)
struct ScenarioSuiteTests {
  @Test("the scenario passes against the reference bus", arguments: scenarioFiles())
  func scenarioPasses(_ file: String) throws {
    let path = packageRoot.appendingPathComponent("Scenarios").appendingPathComponent(file).path
    let scenario = try ScenarioLoader.load(file: path)
    let result = ScenarioRunner(wallDeadline: .seconds(240)).run(scenario)
    for check in result.checks where check.verdict != .pass {
      Issue.record(
        "\(check.rule) \(check.name): expected \(check.expected); observed \(check.observed) \(check.detail ?? "")")
    }
    #expect(result.verdict == .pass)
    #expect(result.error == nil)
    #expect(result.metrics.streamsCompleted == result.metrics.streamsOpened)
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
