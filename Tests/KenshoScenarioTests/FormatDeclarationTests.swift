import Foundation
import KenshoProtocol
import KenshoScenario
import Testing

@Suite("The scenario format, declared once")
struct FormatDeclarationTests {
  @Test("the committed JSON Schema is the one written from the declaration")
  func committedSchemaIsGenerated() throws {
    let committed = try String(
      contentsOf: packageRoot.appendingPathComponent(ScenarioSchema.committedPath), encoding: .utf8)
    let generated = ScenarioSchema.text
    guard committed != generated else { return }
    let a = committed.split(separator: "\n", omittingEmptySubsequences: false)
    let b = generated.split(separator: "\n", omittingEmptySubsequences: false)
    let line = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    Issue.record(
      """
      \(ScenarioSchema.committedPath) differs from the schema of the declaration (ScenarioFormat), from line \
      \(line + 1): committed \(a.count > line ? "\"\(a[line])\"" : "nothing"), generated \
      \(b.count > line ? "\"\(b[line])\"" : "nothing"). Write it again with: \(ScenarioSchema.regenerate)
      """)
  }

  @Test("the schema is draft 2020-12, names the format, and states the limits")
  func schemaContent() throws {
    let json = try #require(
      try JSONSerialization.jsonObject(with: Data(ScenarioSchema.text.utf8)) as? [String: Any])
    #expect(json["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
    #expect(ScenarioSchema.text.contains("\"const\": \"kensho-scenario/1\""))
    #expect(ScenarioSchema.text.contains("\"maximum\": 1000000000000000000"))
    #expect(ScenarioSchema.text.contains("\"maximum\": 9223372036854775807"))
    let defs = try #require(json["$defs"] as? [String: Any])
    #expect(Set(defs.keys).isSuperset(of: ["agent", "behaviour", "chunkContent", "fault", "workloadGroup"]))
  }

  /// Strings around the edges of each format's pattern.
  static let samples = [
    "", "a", "A", "z9", "9a", "-a", "a-b_c", "a b", "a.b", "ä", "a\n", String(repeating: "a", count: 64),
    String(repeating: "a", count: 65), "KSP-3.2", "KSP-10.1", "KSP-99.9", "KSP-3", "KSP3.2", "ksp-3.2", "PERF", "perf",
    "KSP-3.2x", " KSP-3.2",
  ]

  @Test(
    "each string format's Swift rule accepts only what its schema pattern matches",
    arguments: [ScenarioFormat.workerName, ScenarioFormat.kspRuleId, ScenarioFormat.ruleId].map(\.name))
  func patternsAgree(_ name: String) throws {
    let format = try #require(
      [ScenarioFormat.workerName, ScenarioFormat.kspRuleId, ScenarioFormat.ruleId].first { $0.name == name })
    // ECMA-262's `$` (what schemas mean) matches only at the end; ICU's also before a last newline.
    let regex = try NSRegularExpression(pattern: format.pattern.replacing("$", with: "\\z"))
    for sample in Self.samples + KSPRule.all.map(\.id) {
      let range = NSRange(sample.startIndex..., in: sample)
      let matches = regex.firstMatch(in: sample, range: range) != nil
      if format.accepts(sample) { #expect(matches, "\(name) accepts \(sample.debugDescription), the pattern does not") }
      if name == "workerName" { #expect(matches == format.accepts(sample), "\(sample.debugDescription)") }
    }
    if name != "workerName" {
      for rule in KSPRule.all { #expect(format.accepts(rule.id), "\(rule.id)") }
    }
  }

  /// A value of `shape` that it accepts: the lowest of a range, the first of a choice.
  static func sample(_ shape: Shape) -> Any {
    switch shape {
    case .any: return NSNull()
    case .bool: return false
    case .string(let s): return s.values?.first ?? (s.format?.name == "workerName" ? "w" : "x")
    case .integer(let min, _): return min
    case .number(let min, _, _): return min
    case .array(let a): return Array(repeating: sample(a.items), count: a.minItems)
    case .map: return [String: Any]()
    case .object(let o):
      var out: [String: Any] = [:]
      for f in o.fields where f.required || o.atLeastOne.contains(where: { $0.first == f.name }) {
        out[f.name] = sample(f.shape)
      }
      return out
    case .variant(let v): return sample(v.cases[0].shape)
    case .either(_, _, let absent, _): return sample(absent)
    case .named(_, let inner): return sample(inner)
    case .orNull: return NSNull()
    }
  }

  @Test("every declared check loads, with the name it is declared under, and the model knows no other")
  func checksRoundTrip() throws {
    #expect(Set(Expectation.Kind.checkNames) == Set(ScenarioFormat.checks.map(\.name)))
    #expect(ScenarioFormat.checkNames.count == Set(ScenarioFormat.checkNames).count, "no check declared twice")
    for check in ScenarioFormat.checks {
      var item: [String: Any] = ["check": check.name]
      for f in check.fields where f.required || check.atLeastOne.contains(where: { $0.first == f.name }) {
        item[f.name] = Self.sample(f.shape)
      }
      if check.name == "outcome" { item["terminal"] = "end" }
      let data = try scenarioText { $0["expect"] = [item] }
      do {
        let scenario = try ScenarioLoader.load(data: data, file: "x.json")
        #expect(scenario.expect.first?.name == check.name)
      } catch {
        Issue.record("\(check.name): \(error)")
      }
    }
  }

  @Test("a file with every member at a value the declaration accepts loads, with the declared defaults")
  func declaredDefaultsAreTheModels() throws {
    let s = try ScenarioLoader.load(data: try scenarioText(), file: "x.json")
    #expect(s.seed == 1 && s.time == TimeSettings() && s.workload[0].streams == 1 && s.agents[0].count == 1)
    #expect(s.agents[0].methods["m"]?.content == .sequence && s.agents[0].methods["m"]?.finish == .end(nil))
  }

  @Test("\"$schema\" is accepted at the top of a file and nowhere else")
  func schemaMember() {
    let top = loadProblems((try? scenarioText { $0["$schema"] = "../schema.json" }) ?? Data())
    #expect(top.isEmpty, "\(top)")
    let nested = loadProblems((try? scenarioText { set(&$0, "workload", 0, "$schema", "x") }) ?? Data())
    #expect(nested.map(\.path) == ["$.workload[0].$schema"])
  }
}
