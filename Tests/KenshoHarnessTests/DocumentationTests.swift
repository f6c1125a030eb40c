import Foundation
import KenshoHarness
import KenshoScenario
import KenshoVerdict
import Testing

@Suite("Documentation examples run")
struct DocumentationTests {
  /// The last ```json block of docs/SCENARIO-FORMAT.md: the complete example scenario.
  func completeExample() throws -> String {
    let doc = try String(contentsOf: packageRoot.appendingPathComponent("docs/SCENARIO-FORMAT.md"), encoding: .utf8)
    let blocks = doc.components(separatedBy: "```json\n").dropFirst().compactMap {
      $0.components(separatedBy: "\n```").first
    }
    return try #require(blocks.last)
  }

  @Test("the format document's complete example loads and passes")
  func formatExamplePasses() throws {
    let scenario = try ScenarioLoader.load(data: Data(try completeExample().utf8), file: "SCENARIO-FORMAT.md")
    let result = ScenarioRunner().run(scenario)
    #expect(result.verdict == .pass, "\(result.checks.filter { $0.verdict != .pass })")
    #expect(result.metrics.chunksDelivered == 5)
  }

  /// A python3 on PATH that has jsonschema, if any; the schema test is skipped (and says so)
  /// without one.
  static let python: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
    let candidates = path.split(separator: ":").map { "\($0)/python3" } + ["/root/.pyenv/shims/python3"]
    return candidates.first { candidate in
      guard FileManager.default.isExecutableFile(atPath: candidate) else { return false }
      let probe = Process()
      probe.executableURL = URL(fileURLWithPath: candidate)
      probe.arguments = ["-c", "import jsonschema"]
      probe.standardError = FileHandle.nullDevice
      guard (try? probe.run()) != nil else { return false }
      probe.waitUntilExit()
      return probe.terminationStatus == 0
    }
  }()

  @Test(
    "every scenario file and the documented example validate against the committed JSON Schema",
    .enabled(if: python != nil, "needs python3 with jsonschema"))
  func scenariosMatchSchema() throws {
    let folder = packageRoot.appendingPathComponent("Scenarios").path
    let example = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-doc-example.json")
    try Data(try completeExample().utf8).write(to: example)
    let files = try ScenarioLoader.files(in: [folder]) + [example.path]
    let schema = packageRoot.appendingPathComponent("Sources/KenshoScenario/Resources/kensho-scenario-1.schema.json")
    let script = """
      import json, sys
      import jsonschema
      schema = json.load(open(sys.argv[1]))
      jsonschema.Draft202012Validator.check_schema(schema)
      v = jsonschema.Draft202012Validator(schema)
      bad = 0
      for f in sys.argv[2:]:
          for e in v.iter_errors(json.load(open(f))):
              bad += 1
              print(f, "/".join(map(str, e.absolute_path)), e.message)
      sys.exit(1 if bad else 0)
      """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(Self.python))
    process.arguments = ["-c", script, schema.path] + files
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(output)")
  }
}
