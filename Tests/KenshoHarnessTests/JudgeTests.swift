import KenshoHarness
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Testing

/// The checks must be able to fail: scenarios whose expectations contradict what the
/// reference bus does get verdict `fail`, naming the rule.
@Suite("Checks fail when their rule is not met")
struct JudgeTests {
  func scenario(
    _ finish: Finish, chunks: Int = 3, expect: [KenshoScenario.Expectation], time: TimeSettings = TimeSettings()
  )
    -> Scenario
  {
    Scenario(
      name: "probe", time: time,
      agents: [
        AgentSpec(name: "producer", methods: ["m": ProducerBehaviour(chunks: chunks, intervalMs: 10, finish: finish)]),
        AgentSpec(name: "consumer"),
      ],
      workload: [WorkloadGroup(consumers: "consumer", producers: "producer", method: "m", streams: 2)],
      expect: expect)
  }

  @Test("an outcome check fails when streams finish otherwise")
  func outcomeMismatchFails() {
    let result = ScenarioRunner().run(
      scenario(
        .error(SerializedError(name: "E", message: "m", code: "X")),
        expect: [KenshoScenario.Expectation(.outcome(OutcomeMatch(terminal: .end)))]))
    #expect(result.verdict == .fail)
    #expect(result.checks.first?.rule == "KSP-4.1")
    #expect(result.checks.first?.observed == "0 of 2 streams")
  }

  @Test("a hanging stream with a deadline shorter than its timeout ends in verdict error")
  func deadlineGivesError() {
    let result = ScenarioRunner().run(
      scenario(.hang, expect: [KenshoScenario.Expectation(.exactlyOneTerminal)], time: TimeSettings(deadlineMs: 1_000)))
    #expect(result.verdict == .error)
    #expect(result.error?.contains("deadline") == true)
  }

  @Test("a metric threshold fails when it is not met, with rule PERF")
  func metricThresholdFails() {
    let result = ScenarioRunner().run(
      scenario(.end(nil), expect: [KenshoScenario.Expectation(.metric(.chunksDelivered, min: 100, max: nil))]))
    #expect(result.verdict == .fail)
    #expect(result.checks.first?.rule == "PERF")
    #expect(result.checks.first?.observed == "6.000")
  }

  @Test("a broken SHOULD rule grades non-strict, not fail")
  func shouldRuleIsNonStrict() {
    let result = ScenarioRunner().run(
      scenario(
        .end(nil), expect: [KenshoScenario.Expectation(.metric(.chunksDelivered, min: 100, max: nil), rule: "KSP-3.4")])
    )
    #expect(result.checks.first?.verdict == .nonStrict)
    #expect(result.verdict == .nonStrict)
    #expect(result.verdict.isSuccess)
  }

  @Test("the seed makes runs reproducible")
  func seedReproducible() {
    let s = Scenario(
      name: "seeded",
      agents: [
        AgentSpec(name: "producer", methods: ["m": ProducerBehaviour(chunks: 4, content: .text(size: 32))]),
        AgentSpec(name: "consumer"),
      ],
      workload: [WorkloadGroup(consumers: "consumer", producers: "producer", method: "m")],
      expect: [KenshoScenario.Expectation(.orderedDelivery)])
    let a = ChunkGenerator(content: .text(size: 32), seed: 7).chunk(2)
    let b = ChunkGenerator(content: .text(size: 32), seed: 7).chunk(2)
    let c = ChunkGenerator(content: .text(size: 32), seed: 8).chunk(2)
    #expect(a == b)
    #expect(a != c)
    #expect(ScenarioRunner(seed: 99).run(s).seed == 99)
  }
}
