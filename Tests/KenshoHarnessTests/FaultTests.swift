import Foundation
@_spi(Testing) import KenshoHarness
import KenshoScenario
import KenshoVerdict
import Testing

@Suite("Faults in the harness network")
struct FaultTests {
  func load(_ file: String) throws -> Scenario {
    try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(file)").path)
  }

  func run(_ file: String, defects: Set<ReferenceDefect> = [], seed: UInt64? = nil) throws -> ScenarioResult {
    var options = RunOptions()
    options.referenceDefects = defects
    return ScenarioRunner(seed: seed, options: options).run(try load(file))
  }

  func failedRules(_ r: ScenarioResult) -> Set<String> {
    Set(r.checks.filter { $0.verdict == .fail || $0.verdict == .nonStrict }.map(\.rule))
  }

  @Test("reordering: passes with seq, fails (KSP-3.4, 4.4) on a bus whose chunks carry no seq")
  func reorderCatchesMissingSeq() throws {
    #expect(try run("faults-reorder-jitter.json").verdict == .pass)
    let broken = try run("faults-reorder-jitter.json", defects: [.unnumberedChunks])
    #expect(failedRules(broken).isSuperset(of: ["KSP-3.4", "KSP-4.4"]), "\(broken.checks)")
    #expect((broken.metrics.faultsInjected.values.first ?? 0) > 0)
    // Both SHOULD rules: NON-STRICT, never FAILED.
    #expect(broken.checks.filter { $0.rule == "KSP-4.4" }.allSatisfy { $0.verdict == .nonStrict })
  }

  @Test("KSP-3.3: idle-timeout-activity passes on the reference and fails on a bus refreshed by any sender")
  func activityCatchesForeignRefresh() throws {
    let clean = try run("idle-timeout-activity.json")
    #expect(clean.verdict == .pass, "\(clean.checks)")
    #expect(clean.checks.first { $0.rule == "KSP-3.3" }?.verdict == .pass)
    let broken = try run("idle-timeout-activity.json", defects: [.refreshesOnAnySender])
    let check = try #require(broken.checks.first { $0.rule == "KSP-3.3" })
    #expect(check.verdict == .fail, "\(check)")
    #expect(check.counterexample?.text.contains("forged by the harness (foreign_chunk)") == true, "\(check)")
    #expect(check.counterexample?.text.contains("was counted as activity") == true, "\(check)")
  }

  @Test("duplicates: passes on the reference, fails KSP-2.4 when a repeated request re-runs the handler")
  func duplicatesCatchRerun() throws {
    #expect(try run("faults-duplicates.json").verdict == .pass)
    let rerun = try run("faults-duplicates.json", defects: [.rerunsDuplicateRequests])
    #expect(failedRules(rerun).contains("KSP-2.4"), "\(rerun.checks)")
    let unnumbered = try run("faults-duplicates.json", defects: [.unnumberedChunks])
    #expect(failedRules(unnumbered).contains("KSP-3.4"), "repeated chunks reach onChunk without seq")
  }

  @Test("a dropped end and a partition are reclaimed by the timeout; without a sweep they are not")
  func droppedEndNeedsSweep() throws {
    for file in ["faults-dropped-end.json", "faults-partition-heals.json", "faults-dropped-nth-chunk.json"] {
      #expect(try run(file).verdict == .pass, "\(file)")
      let stuck = try run(file, defects: [.neverSweeps])
      #expect(stuck.verdict == .error || stuck.verdict == .fail, "\(file) must not pass without the sweep")
    }
  }

  @Test("a faulty run replays identically from its seed, and differs with another seed")
  func replaysFromSeed() throws {
    let a = try run("faults-drop-random.json", seed: 5)
    let b = try run("faults-drop-random.json", seed: 5)
    let c = try run("faults-drop-random.json", seed: 6)
    #expect(a.metrics.faultsInjected == b.metrics.faultsInjected)
    #expect(a.metrics.chunksDelivered == b.metrics.chunksDelivered)
    #expect(a.metrics.messages == b.metrics.messages)
    // The wire log replays too, but for the ids the buses draw at random.
    let rows = { (r: ScenarioResult) in
      r.wireLog.streams.flatMap(\.rows).map { "\($0.t) \($0.type) \($0.from)→\($0.to) \($0.seq ?? -1) \($0.fates)" }
    }
    #expect(!rows(a).isEmpty && rows(a) == rows(b))
    #expect(a.checks == b.checks)
    #expect(
      a.metrics.faultsInjected != c.metrics.faultsInjected || a.metrics.chunksDelivered != c.metrics.chunksDelivered)
  }

  @Test("fault declarations are validated with their paths")
  func faultValidation() {
    let json = """
      {"format": "kensho-scenario/1", "name": "f",
       "agents": [{"name": "p", "methods": {"m": {"chunks": 1}}}, {"name": "c"}],
       "workload": [{"consumers": "c", "producers": "p", "method": "m"}],
       "expect": [{"check": "ordered_delivery"}],
       "faults": [{"kind": "explode"}, {"kind": "drop", "types": ["stream_chonk"], "probability": 2},
                  {"kind": "delay", "distribution": "uniform", "minMs": 5, "maxMs": 1},
                  {"kind": "drop", "between": ["c", "nobody"]}, {"kind": "duplicate", "ms": 3}]}
      """
    var paths: Set<String> = []
    do {
      _ = try ScenarioLoader.load(data: Data(json.utf8), file: "f.json")
    } catch {
      paths = Set(error.problems.map(\.path))
    }
    #expect(
      paths == [
        "$.faults[0].kind", "$.faults[1].types[0]", "$.faults[1].probability", "$.faults[2].maxMs",
        "$.faults[3].between[1]", "$.faults[4].ms",
      ])
  }
}

@Suite("Slow consumers and flow control")
struct SlowConsumerTests {
  func run(_ file: String, defects: Set<ReferenceDefect> = []) throws -> ScenarioResult {
    var options = RunOptions()
    options.referenceDefects = defects
    return ScenarioRunner(options: options).run(
      try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(file)").path))
  }

  @Test("without flow control a slow consumer's buffer grows, and the report says so")
  func unboundedIsAFinding() throws {
    let r = try run("slow-consumer-unbounded.json")
    #expect(r.verdict == .pass)
    #expect((r.metrics.maxInboxDepth ?? 0) > 1_000)
    #expect(r.findings.contains { $0.kind == .unboundedBuffering })
  }

  @Test("with flow control memory stays bounded; a producer without the extension still interoperates")
  func flowControlBounds() throws {
    let bounded = try run("slow-consumer-flow-control.json")
    #expect(bounded.verdict == .pass)
    #expect((bounded.metrics.maxInboxDepth ?? 99) <= 33)
    #expect(bounded.findings.isEmpty)
    let unbounded = try run("slow-consumer-unbounded.json")
    #expect((bounded.metrics.peakBytes ?? .max) * 4 < (unbounded.metrics.peakBytes ?? 0))
    // The producer ignores the offer: the stream still completes, unbounded again.
    let legacy = try run("slow-consumer-flow-control.json", defects: [.withoutFlowControl])
    #expect(legacy.checks.first { $0.name == "outcome" }?.verdict == .pass)
    #expect(legacy.checks.first { $0.name == "ordered_delivery" }?.verdict == .pass)
    #expect(legacy.checks.first { $0.name == "max_inbox_depth" }?.verdict == .fail)
  }
}
