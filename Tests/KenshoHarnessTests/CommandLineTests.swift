import Foundation
import Testing

/// Runs the built `kensho-bench` (beside this test binary) and returns its exit code and output.
func kenshoBench(_ arguments: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: builtProduct("kensho-bench"))
  process.arguments = arguments
  process.currentDirectoryURL = packageRoot
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  let stderr = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

@Suite("kensho-bench command line", .serialized)
struct CommandLineTests {
  let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-cli-\(UUID().uuidString)")

  @Test("a passing run exits 0 and writes a complete JSON report")
  func passingRunExitsZero() throws {
    let r = try kenshoBench(["Scenarios/ordering-seed.json", "--out", out.path])
    #expect(r.code == 0, "\(r.stderr)")
    #expect(r.stdout.contains("OK          ordering-seed"))
    let data = try Data(contentsOf: out.appendingPathComponent("kensho-report.json"))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(json["format"] as? String == "kensho-report/1")
    #expect(json["complete"] as? Bool == true)
    let scenarios = try #require(json["scenarios"] as? [[String: Any]])
    #expect(scenarios.first?["verdict"] as? String == "pass")
    let checks = try #require(scenarios.first?["checks"] as? [[String: Any]])
    #expect(checks.contains { $0["rule"] as? String == "KSP-3.2" && $0["expected"] != nil && $0["observed"] != nil })
  }

  @Test("a failing scenario exits 1")
  func failingRunExitsOne() throws {
    let file = out.appendingPathComponent("failing.json")
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    try Data(
      """
      {"format": "kensho-scenario/1", "name": "expects-the-impossible",
       "agents": [{"name": "p", "methods": {"m": {"chunks": 2, "finish": {"kind": "error",
         "error": {"name": "E", "message": "no"}}}}}, {"name": "c"}],
       "workload": [{"consumers": "c", "producers": "p", "method": "m"}],
       "expect": [{"check": "outcome", "terminal": "end"}]}
      """.utf8
    ).write(to: file)
    let r = try kenshoBench([file.path, "--out", out.path])
    #expect(r.code == 1)
    #expect(r.stdout.contains("FAILED      expects-the-impossible"))
    #expect(r.stdout.contains("KSP-4.1"))
  }

  @Test("a broken scenario file exits 2 naming the file and the JSON path")
  func brokenFileExitsTwo() throws {
    let file = out.appendingPathComponent("broken.json")
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    try Data(
      #"{"format": "kensho-scenario/1", "name": "b", "agents": [], "workload": [], "expect": [{"check": 3}]}"#.utf8
    )
    .write(to: file)
    for command in [["validate", file.path], [file.path, "--out", out.path]] {
      let r = try kenshoBench(command)
      #expect(r.code == 2)
      #expect(r.stderr.contains("\(file.path): $.expect[0].check: expected a string, found 3"), "\(r.stderr)")
    }
    #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("kensho-report.json").path))
  }

  @Test("usage errors exit 2")
  func usageErrorsExitTwo() throws {
    #expect(try kenshoBench(["run", "--no-such-flag"]).code == 2)
    #expect(try kenshoBench(["run", "Scenarios", "--deadline", "-1"]).code == 2)
    #expect(try kenshoBench(["/no/such/folder"]).code == 2)
  }

  @Test("schema prints the JSON Schema; list names every scenario")
  func schemaAndList() throws {
    let schema = try kenshoBench(["schema"])
    #expect(schema.code == 0)
    #expect((try? JSONSerialization.jsonObject(with: Data(schema.stdout.utf8))) != nil)
    let list = try kenshoBench(["list", "Scenarios"])
    #expect(list.code == 0)
    #expect(list.stdout.contains("ordering-seed"))
    #expect(list.stdout.contains("KSP-3.2"))
  }
}

@Suite("kensho-bench reports, baselines and interruption", .serialized)
struct CommandLineReportTests {
  let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-cli-\(UUID().uuidString)")

  @Test("a run writes JSON, HTML, JUnit and .hgrm files; --format chooses")
  func writesAllFormats() throws {
    let r = try kenshoBench(["Scenarios/ordering-seed.json", "--out", out.path])
    #expect(r.code == 0)
    for name in [
      "kensho-report.json", "kensho-report.html", "kensho-junit.xml", "hgrm/ordering-seed.chunk-latency.hgrm",
    ] {
      #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), "\(name)")
    }
    let only = out.appendingPathComponent("only-junit")
    #expect(try kenshoBench(["Scenarios/ordering-seed.json", "--out", only.path, "--format", "junit"]).code == 0)
    #expect(try FileManager.default.contentsOfDirectory(atPath: only.path) == ["kensho-junit.xml"])
    #expect(try kenshoBench(["Scenarios/ordering-seed.json", "--format", "pdf"]).code == 2)
  }

  @Test("a wall-clock regression over repeated runs exits 3, shown in JSON and JUnit; a broken baseline exits 2")
  func baselineExitCode() throws {
    let first = out.appendingPathComponent("first")
    let scenario = "Scenarios/faults-duplicates.json"
    #expect(
      try kenshoBench([scenario, "--out", first.path, "--format", "json", "--repeat", "2"]).code == 0)
    // Pretend every baseline run was 100 times faster.
    let url = first.appendingPathComponent("kensho-report.json")
    var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    #expect(json["repeats"] as? Int == 2)
    var scenarios = try #require(json["scenarios"] as? [[String: Any]])
    var figures = try #require(scenarios[0]["figures"] as? [String: [Double]])
    figures["chunks_per_second"] = try #require(figures["chunks_per_second"]).map { $0 * 100 }
    scenarios[0]["figures"] = figures
    json["scenarios"] = scenarios
    let baseline = out.appendingPathComponent("baseline.json")
    try JSONSerialization.data(withJSONObject: json).write(to: baseline)
    let second = out.appendingPathComponent("second")
    let r = try kenshoBench([
      scenario, "--out", second.path, "--baseline", baseline.path, "--format", "json,junit", "--repeat", "2",
    ])
    #expect(r.code == 3, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("REGRESSION faults-duplicates chunks_per_second"), "\(r.stdout)")
    #expect(r.stdout.contains("best of 2 runs vs worst of 2"))
    let junit = try String(contentsOf: second.appendingPathComponent("kensho-junit.xml"), encoding: .utf8)
    #expect(junit.contains("type=\"REGRESSION\""))
    // Without repeats, wall-clock figures are not compared: no regression, and the run says why.
    let once = try kenshoBench([scenario, "--out", second.path, "--baseline", baseline.path, "--format", "json"])
    #expect(once.code == 0, "\(once.stdout)")
    #expect(once.stdout.contains("wall-clock figures not compared"), "\(once.stdout)")
    let broken = out.appendingPathComponent("broken.json")
    try Data("{\"format\": 1}".utf8).write(to: broken)
    let bad = try kenshoBench(["Scenarios/ordering-seed.json", "--out", second.path, "--baseline", broken.path])
    #expect(bad.code == 2)
    #expect(bad.stderr.contains(broken.path))
  }

  @Test("Ctrl-C during a run still writes a valid report, marked incomplete")
  func interruptWritesIncompleteReport() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: builtProduct("kensho-bench"))
    process.arguments = ["Scenarios/soak-long-streams.json", "--out", out.path]
    process.currentDirectoryURL = packageRoot
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    Thread.sleep(forTimeInterval: 1.5)
    process.interrupt()
    process.waitUntilExit()
    #expect(process.terminationStatus == 1)
    let data = try Data(contentsOf: out.appendingPathComponent("kensho-report.json"))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(json["complete"] as? Bool == false)
    let scenarios = try #require(json["scenarios"] as? [[String: Any]])
    // The harness's own "interrupted with 8 streams open", or, when it does not stop within
    // 1.5 s, the command line's note that it wrote the reports without it.
    #expect((scenarios.first?["error"] as? String)?.hasPrefix("interrupted") == true, "\(scenarios)")
    #expect(json["interruptedBy"] as? String == "SIGINT")
  }
}

@Suite("Heap profile on a failed leak verdict")
struct HeapProfileTests {
  @Test("with MALLOC_CONF=prof:true a failed leak verdict writes a heap profile and prints the jeprof command")
  func heapProfileWritten() throws {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-heap-\(UUID().uuidString)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: builtProduct("kensho-bench"))
    process.arguments = [
      "Scenarios/soak-many-streams.json", "--out", out.path, "--leaking-reference-for-testing", "--format", "json",
    ]
    process.environment = ProcessInfo.processInfo.environment.merging(["MALLOC_CONF": "prof:true"]) { _, new in new }
    process.currentDirectoryURL = packageRoot
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 1)
    #expect(output.contains("FAILED KSP-9.2 no_leak"))
    #expect(output.contains("jeprof --show_bytes --text"), "\(output)")
    #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("soak-many-streams.heap").path))
  }
}

@Suite("Conformance matrix and defect catalogue commands", .serialized)
struct MatrixCommandTests {
  let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-matrix-\(UUID().uuidString)")

  @Test("matrix grades each implementation by rule and links each cell to its evidence", .enabled(if: hasNode))
  func matrix() throws {
    let ref = out.appendingPathComponent("ref")
    let js = out.appendingPathComponent("js")
    #expect(try kenshoBench(["Scenarios/faults-reorder-jitter.json", "--out", ref.path]).code == 0)
    #expect(
      try kenshoBench([
        "Scenarios/faults-reorder-jitter.json", "--out", js.path, "--impl", nodeAdapter + " --defect chunks-reordered",
      ]).code == 0, "a broken SHOULD rule is non-strict, which passes")
    let r = try kenshoBench([
      "matrix", ref.appendingPathComponent("kensho-report.json").path,
      js.appendingPathComponent("kensho-report.json").path,
      "--out", out.path,
    ])
    #expect(r.code == 0, "\(r.stderr)")
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("kensho-matrix.json")))
        as? [String: Any])
    let rules = try #require(json["rules"] as? [[String: Any]])
    let seq = try #require(rules.first { $0["id"] as? String == "KSP-3.4" })
    #expect(seq["grades"] as? [String] == ["pass", "non_strict"])
    let untested = try #require(rules.first { $0["id"] as? String == "KSP-10.1" })
    #expect(untested["grades"] as? [String] == ["untested", "untested"])
    let html = try String(contentsOf: out.appendingPathComponent("kensho-matrix.html"), encoding: .utf8)
    #expect(html.contains("href=\"js/kensho-report.html#rule-KSP-3.4\""))
    #expect(try kenshoBench(["matrix", "/no/such/report.json", "--out", out.path]).code == 2)
  }

  @Test("catalogue reports which defects the scenarios catch, and the catch rate", .enabled(if: hasNode))
  func catalogue() throws {
    let r = try kenshoBench([
      "catalogue", "Scenarios/faults-forged-cancel.json", "--impl", nodeAdapter, "--out", out.path,
    ])
    // One scenario cannot catch all twelve: the run says which escaped and exits 1.
    #expect(r.code == 1)
    #expect(r.stdout.contains("CAUGHT cancel-from-anyone"))
    #expect(r.stdout.contains("MISSED error-code-dropped"))
    // Progress as it goes: the run without defects, then each defect.
    #expect(r.stdout.contains("without defects: scenario 1 of 1"))
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("kensho-catalogue.json")))
        as? [String: Any])
    let rate = try #require(json["catchRate"] as? Double)
    #expect(rate > 0 && rate < 1)
    #expect((json["entries"] as? [Any])?.count == json["defects"] as? Int)
    #expect(json["complete"] as? Bool == true)
  }
}
