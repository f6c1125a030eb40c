import Foundation
import KenshoHarness
import KenshoReport
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

/// The format document and the JavaScript bus's README, checked against what they describe.
@Suite("Documentation agrees with the declaration and the implementations")
struct DocumentationAgreementTests {
  func document(_ path: String) throws -> String {
    try String(contentsOf: packageRoot.appendingPathComponent(path), encoding: .utf8)
  }

  /// The rows of the Markdown table whose header starts with `header`, split into cells.
  func table(_ text: String, header: String) -> [[String]] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    guard let start = lines.firstIndex(where: { $0.hasPrefix(header) }) else { return [] }
    return lines[(start + 2)...].prefix { $0.hasPrefix("|") }.map { row in
      row.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map {
        $0.trimmingCharacters(in: .whitespaces)
      }
    }
  }

  /// The names in backticks in `cell`, quotes removed.
  func names(_ cell: String) -> [String] {
    cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map {
      String($0.element).replacing("\"", with: "")
    }
  }

  @Test("the check table lists exactly the declared checks, with the members each takes")
  func checkTable() throws {
    let rows = table(try document("docs/SCENARIO-FORMAT.md"), header: "| `check`")
    let listed = rows.compactMap { names($0[0]).first }
    #expect(listed == ScenarioFormat.checkNames, "docs/SCENARIO-FORMAT.md lists \(listed)")
    for check in ScenarioFormat.checks where check.name != "outcome" {
      let row = rows.first { names($0[0]).first == check.name }
      #expect(
        Set(names(row?[1] ?? "")) == Set(check.fields.map(\.name)), "the members of \(check.name) in the table")
    }
  }

  @Test("the content, finish and metric tables list exactly the declared kinds and metrics")
  func kindTables() throws {
    let doc = try document("docs/SCENARIO-FORMAT.md")
    func tags(_ shape: Shape) -> [String] {
      switch shape {
      case .named(_, let inner): tags(inner)
      case .variant(let v): v.tagValues
      default: []
      }
    }
    #expect(
      table(doc, header: "| `kind`     | Members").compactMap { names($0[0]).first }
        == tags(ScenarioFormat.chunkContent))
    #expect(table(doc, header: "| `kind`  | Members").compactMap { names($0[0]).first } == tags(ScenarioFormat.finish))
    let metrics = table(doc, header: "| Metric").flatMap { names($0[0]) }
    #expect(metrics == Metric.allCases.map(\.rawValue))
    for forgery in Fault.Forgery.allCases { #expect(doc.contains("`\"\(forgery.rawValue)\"`"), "\(forgery)") }
  }

  @Test("the rules checked in code are the ones the format document lists")
  func codeRules() throws {
    let doc = try document("docs/SCENARIO-FORMAT.md")
    for rule in ScenarioFormat.codeRules { #expect(doc.contains("- \(rule)\n"), "\(rule)") }
  }

  @Test(
    "the JavaScript bus's defect table names the rules --list-defects gives and the scenarios that catch each",
    .enabled(if: hasNode, "needs node"))
  func defectTable() throws {
    let rows = table(try document("Adapters/node/README.md"), header: "| defect")
    let listed = try DefectCatalogueTests.listed(nodeAdapter)
    #expect(rows.compactMap { names($0[0]).first } == listed.map(\.name))
    for defect in listed {
      let row = rows.first { names($0[0]).first == defect.name }
      #expect(
        DefectCatalogue.claimedRules(in: row?[2] ?? "") == defect.claims, "\(defect.name): README \(row?[2] ?? "")")
      let caughtBy = DefectCatalogueTests.catalogue.first { $0.defect == defect.name }?.scenarios ?? []
      #expect(row?[3].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } == caughtBy)
    }
  }
}
