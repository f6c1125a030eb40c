import Foundation
@_spi(Testing) import KenshoHarness
import KenshoScenario
import KenshoVerdict
import Testing

/// The run loop cannot be hung or crashed by what a bus does (issue #14).
@Suite("Run loop robustness")
struct RobustnessTests {
  @Test("a bus that never returns from a delivery is abandoned by the watchdog: ERROR within the deadline + 5 s")
  func watchdogAbandonsAHungBus() throws {
    let scenario = try ScenarioLoader.load(
      data: Data(
        """
        {"format": "kensho-scenario/1", "name": "hung",
         "agents": [{"name": "p", "methods": {"m": {"chunks": 3}}}, {"name": "c"}],
         "workload": [{"consumers": "c", "producers": "p", "method": "m", "streams": 1}],
         "expect": [{"check": "ordered_delivery"}]}
        """.utf8), file: "inline.json")
    var options = RunOptions()
    options.hangsInOnChunk = true
    let started = ContinuousClock.now
    let result = ScenarioRunner(wallDeadline: .seconds(1), options: options).run(scenario)
    let took = ContinuousClock.now - started
    #expect(result.verdict == .error)
    #expect(result.error?.contains("deadline exceeded") == true)
    #expect(took < .seconds(1) + ScenarioRunner.watchdogGrace + .seconds(2), "took \(took)")
  }

  @Test("100 000 streams opened one at a time on a disposed consumer do not overflow the stack")
  func disposedConsumerDoesNotRecurse() throws {
    let scenario = try ScenarioLoader.load(
      data: Data(
        """
        {"format": "kensho-scenario/1", "name": "disposed-early",
         "agents": [{"name": "p", "methods": {"m": {"chunks": 1}}}, {"name": "c"}],
         "workload": [{"consumers": "c", "producers": "p", "method": "m", "streams": 100000, "concurrency": 1,
                       "startMs": 1}],
         "actions": [{"atMs": 0, "dispose": "c"}],
         "expect": [{"check": "exactly_one_terminal"}, {"check": "outcome", "terminal": "error", "code": "BUS_DISPOSED"}]}
        """.utf8), file: "inline.json")
    let result = ScenarioRunner(wallDeadline: .seconds(120), options: RunOptions(measure: false)).run(scenario)
    #expect(result.error == nil)
    #expect(result.checks.first?.verdict == .pass, "\(result.checks.map(\.observed)) \(result.error ?? "")")
    // Every stream was opened after the dispose: KSP-10.1 (open streams terminated by a
    // dispose) had no open stream to speak of.
    #expect(result.checks.last?.verdict == .untested, "\(result.checks.map(\.observed))")
    #expect(result.checks.last?.detail?.contains("no bus was disposed while one of its streams was open") == true)
  }
}
