import Foundation
import KenshoHarness
import KenshoReport
import KenshoScenario
import KenshoVerdict
import Testing

/// Where the built executables are: beside this test binary.
func builtProduct(_ name: String) -> String {
  var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
  while !FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) && folder.path != "/" {
    folder = folder.deletingLastPathComponent()
  }
  return folder.appendingPathComponent(name).path
}

let nodeAdapter = "node " + packageRoot.appendingPathComponent("Adapters/node/adapter.mjs").path
let hasNode = ["/usr/bin/node", "/usr/local/bin/node"].contains { FileManager.default.isExecutableFile(atPath: $0) }

/// The scenarios that run in seconds through an adapter (each chunk is two round trips over
/// pipes, so the million-chunk ones take minutes and are left to the command line).
func lightScenarios() throws -> [Scenario] {
  let heavy: Set = [
    "large-file-chunking", "ordering-large-count", "soak-long-streams", "soak-many-streams",
    "fanout-one-producer-1000-consumers", "flow-control-cancel-awaiting-credit", "flow-control-self-stream",
    "soak-cancelled-streams",
  ]
  let folder = packageRoot.appendingPathComponent("Scenarios").path
  // Relay scenarios through adapters: AdapterRelayTests (the reference adapter has no relay capability).
  return try ScenarioLoader.files(in: [folder]).map { try ScenarioLoader.load(file: $0) }.filter {
    !heavy.contains($0.name) && $0.network.kind != .relay
  }
}

func run(_ scenario: Scenario, impl: String?, deadline: Duration = .seconds(20)) -> ScenarioResult {
  var options = RunOptions()
  options.adapterCommand = impl
  options.adapterDeadline = deadline
  return ScenarioRunner(options: options).run(scenario)
}

@Suite("Adapters", .serialized)
struct AdapterTests {
  @Test("the reference through its adapter gets the same verdicts as in process")
  func referenceAdapterSameVerdicts() throws {
    let adapter = builtProduct("kensho-ref-adapter")
    for scenario in try lightScenarios() {
      let inProcess = run(scenario, impl: nil)
      let viaAdapter = run(scenario, impl: adapter)
      #expect(viaAdapter.error == nil, "\(scenario.name): \(viaAdapter.error ?? "")")
      // Performance bounds (rule PERF) judge the machine as much as the bus: beside the other
      // tests, a wall-clock latency bound may hold in one run and not the other. In real time,
      // memory in process is the whole process's allocations, the other tests' included.
      let noisy: Set = scenario.time.mode == .real ? ["PERF", "KSP-9.2", "KSP-9.3"] : ["PERF"]
      // What an adapter's processes cannot show (a capability they lack; the harness's own
      // slow-consumer inbox, which a lower bound on memory asks to see) is not compared.
      for (a, b) in zip(inProcess.checks, viaAdapter.checks)
      where b.verdict != .unsupported && !(b.verdict == .untested && b.rule == "KSP-9.3") && !noisy.contains(a.rule) {
        #expect(a.verdict == b.verdict, "\(scenario.name) \(a.rule) \(a.name): \(a.observed) vs \(b.observed)")
      }
    }
  }

  @Test("the JavaScript implementation passes the suite", .enabled(if: hasNode, "needs node"))
  func javascriptPasses() throws {
    for scenario in try lightScenarios() {
      let result = run(scenario, impl: nodeAdapter)
      // Wall-clock bounds (rule PERF) are for the main job, on a quiet machine.
      let failed = result.checks.filter { !$0.verdict.isSuccess && $0.rule != "PERF" }
      #expect(failed.isEmpty && result.error == nil, "\(scenario.name): \(failed) \(result.error ?? "")")
    }
  }

  @Test(
    "a real-time scenario against an adapter without real_time is UNSUPPORTED, naming the capability",
    .enabled(if: hasNode, "needs node"))
  func realTimeNeedsTheCapability() throws {
    let scenario = try ScenarioLoader.load(
      file: packageRoot.appendingPathComponent("Scenarios/realtime-open-load.json").path)
    let result = run(scenario, impl: nodeAdapter + " --without-capability real_time")
    #expect(result.verdict == .unsupported)
    #expect(result.error?.contains("no real_time capability") == true, "\(result.error ?? "")")
    #expect(result.checks.allSatisfy { $0.verdict == .unsupported })
  }

  @Test(
    "in real time through an adapter, latency is measured on the harness's clock: every chunk, corrected and not",
    .enabled(if: hasNode, "needs node"))
  func realTimeLatencyMeasured() throws {
    let scenario = try ScenarioLoader.load(
      file: packageRoot.appendingPathComponent("Scenarios/realtime-open-load.json").path)
    let result = run(scenario, impl: nodeAdapter)
    #expect(result.error == nil, "\(result.error ?? "")")
    #expect(result.checks.allSatisfy { $0.verdict == .pass || $0.rule == "PERF" }, "\(result.checks)")
    let latency = try #require(result.metrics.chunkLatency)
    let corrected = try #require(result.metrics.chunkLatencyCorrected)
    #expect(latency.count == 2000 && corrected.count == 2000)
    // From when a chunk was due is never shorter than from when it was sent.
    #expect(corrected.p50 >= latency.p50)
    // The workload took its 5 s of opening: scenario time 0 is its start, not the processes' start.
    #expect(result.metrics.wallSeconds >= 4.9, "\(result.metrics.wallSeconds)")
  }

  @Test(
    "a misbehaving adapter gets a clear verdict within the deadline", .enabled(if: hasNode, "needs node"),
    arguments: [
      ("crash", "exited (status 3)"), ("hang", "did not answer \"call\" within 3.0 seconds"),
      ("garbage", "not a JSON object"),
      ("huge", "longer than 64 MiB"), ("wrong-version", "speaks adapter protocol \"kensho-adapter/0\""),
    ])
  func misbehaving(mode: String, says: String) throws {
    let scenario = try ScenarioLoader.load(
      file: packageRoot.appendingPathComponent("Scenarios/ordering-seed.json").path)
    let started = ContinuousClock.now
    // Reading 70 MB before giving up on the line needs more time than a silent hang does.
    let result = run(scenario, impl: nodeAdapter + " --misbehave \(mode)", deadline: .seconds(mode == "huge" ? 15 : 3))
    #expect(ContinuousClock.now - started < .seconds(30))
    #expect(result.verdict == .error)
    #expect(result.checks.map(\.rule) == ["ADAPTER"])
    #expect(result.error?.contains(says) == true, "\(result.error ?? "")")
  }
}

/// The defect catalogue of the JavaScript implementation: each defect, switched on, must be
/// caught by at least one scenario, on the rules it breaks.
@Suite("Defect catalogue", .serialized)
struct DefectCatalogueTests {
  static let catalogue: [(defect: String, scenarios: [String], rules: Set<String>)] = [
    ("chunks-to-self", ["ordering-seed"], ["KSP-3.2", "KSP-4.1"]),
    ("request-instead-of-stream-request", ["ordering-seed"], ["KSP-2.4", "KSP-3.2", "KSP-4.1"]),
    ("start-failure-as-response", ["error-unknown-method"], ["KSP-2.3"]),
    ("no-idle-timeout", ["idle-timeout-per-stream"], ["KSP-6.1", "KSP-6.2", "KSP-6.3", "HARNESS"]),
    ("sweep-never-runs", ["idle-timeout-per-stream"], ["KSP-6.1", "KSP-6.2", "KSP-6.3", "HARNESS"]),
    ("entry-left-after-error", ["error-explicit-code"], ["KSP-9.1", "KSP-4.2"]),
    ("duplicate-reruns-handler", ["faults-duplicates"], ["KSP-2.4"]),
    ("error-code-dropped", ["error-explicit-code"], ["KSP-5.1", "KSP-5.2"]),
    ("chunks-reordered", ["faults-reorder-jitter"], ["KSP-3.4", "KSP-4.4"]),
    ("last-chunk-dropped", ["ordering-seed"], ["KSP-3.2", "KSP-4.1"]),
    ("cancel-from-anyone", ["faults-forged-cancel"], ["KSP-7.3"]),
    ("throwing-callback-leaves-entry", ["callbacks-that-throw"], ["KSP-4.2", "KSP-5.4"]),
    // Leaks that leave every count right: only the memory checks see them.
    ("finished-streams-kept", ["soak-many-streams"], ["KSP-9.2"]),
    ("cancelled-emitters-kept", ["soak-cancelled-streams"], ["KSP-9.2"]),
  ]

  @Test("the catalogue lists exactly the defects the tests cover", .enabled(if: hasNode, "needs node"))
  func catalogueIsComplete() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = (try ShellWords.split(nodeAdapter)) + ["--list-defects"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let listed = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      .split(separator: "\n").compactMap { $0.split(separator: "\t").first.map(String.init) }
    process.waitUntilExit()
    #expect(Set(listed) == Set(Self.catalogue.map(\.defect)))
  }

  /// The defects as the implementation lists them, with the rules each claims to break.
  static func listed(_ impl: String) throws -> [DefectCatalogue.Defect] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = (try ShellWords.split(impl)) + ["--list-defects"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return DefectCatalogue.parse(listing: text)
  }

  /// Scenarios/NAME.json, with a soak's streams cut to a quarter (and its count expectations
  /// dropped): one stream at a time through node in a debug build, 20 000 streams take minutes,
  /// and a leak of every finished stream shows as well in 5 000. The full soaks run in the main
  /// job, and through `kensho-bench catalogue`.
  static func scaled(_ name: String) throws -> Scenario {
    let path = packageRoot.appendingPathComponent("Scenarios/\(name).json").path
    guard name.hasPrefix("soak-"),
      var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any],
      var workload = json["workload"] as? [[String: Any]]
    else { return try ScenarioLoader.load(file: path) }
    for i in workload.indices {
      if let streams = workload[i]["streams"] as? Int { workload[i]["streams"] = max(500, streams / 4) }
    }
    json["workload"] = workload
    json["expect"] = (json["expect"] as? [[String: Any]])?.filter { $0["metric"] == nil }
    return try ScenarioLoader.load(data: try JSONSerialization.data(withJSONObject: json), file: path)
  }

  @Test(
    "every catalogued defect is caught honestly: a check failed on a rule it claims, and passed without it",
    .enabled(if: hasNode, "needs node"), arguments: catalogue.map(\.defect))
  func defectIsCaught(defect: String) throws {
    let entry = try #require(Self.catalogue.first { $0.defect == defect })
    let listed = try #require(try Self.listed(nodeAdapter).first { $0.name == defect })
    #expect(!listed.claims.isEmpty, "\(defect) names no rule it breaks")
    var clean: [ScenarioResult] = []
    var broken: [ScenarioResult] = []
    for name in entry.scenarios {
      let scenario = try Self.scaled(name)
      clean.append(run(scenario, impl: nodeAdapter))
      broken.append(run(scenario, impl: nodeAdapter + " --defect \(defect)"))
    }
    let judged = DefectCatalogue.judge(listed, clean: clean, broken: broken)
    #expect(judged.outcome == .caught, "\(defect): \(judged.why ?? "") \(judged.verdicts)")
  }

  @Test("a catalogued defect that changes nothing is reported missed", .enabled(if: hasNode, "needs node"))
  func doNothingDefectIsMissed() throws {
    let impl = packageRoot.appendingPathComponent("Tests/Fixtures/noop-defect-adapter.sh").path
    let defect = try #require(try Self.listed(impl).first)
    #expect(defect.claims == ["KSP-9.3", "KSP-3.2"])
    var clean: [ScenarioResult] = []
    var broken: [ScenarioResult] = []
    for name in ["ordering-seed", "slow-consumer-flow-control"] {
      let scenario = try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(name).json").path)
      clean.append(run(scenario, impl: impl))
      broken.append(run(scenario, impl: impl + " --defect does-nothing"))
    }
    // Without flow_control the flow-control scenario is UNSUPPORTED: that never counts as a catch.
    #expect(broken.flatMap(\.checks).contains { $0.rule == "KSP-9.3" && $0.verdict == .unsupported })
    #expect(clean.flatMap(\.checks).contains { $0.rule == "KSP-9.3" && $0.verdict == .pass })
    let judged = DefectCatalogue.judge(defect, clean: clean, broken: broken)
    #expect(judged.outcome == .missed)
    #expect(judged.caughtBy.isEmpty)
  }

}
