import Foundation
import KenshoProtocol
import KenshoScenario
import Testing

@Suite("Scenario loading")
struct LoaderTests {
  func problems(_ json: String) -> [ScenarioProblem] {
    do {
      _ = try ScenarioLoader.load(data: Data(json.utf8), file: "x.json")
      return []
    } catch {
      return error.problems
    }
  }

  let valid = """
    {"format": "kensho-scenario/1", "name": "ok",
     "agents": [{"name": "p", "methods": {"m": {"chunks": 2}}}, {"name": "c"}],
     "workload": [{"consumers": "c", "producers": "p", "method": "m"}],
     "expect": [{"check": "ordered_delivery"}]}
    """

  @Test("a valid file loads with the defaults filled in")
  func validLoads() throws {
    let s = try ScenarioLoader.load(data: Data(valid.utf8), file: "x.json")
    #expect(s.name == "ok")
    #expect(s.time.mode == .virtual)
    #expect(s.agents[0].methods["m"] == ProducerBehaviour(chunks: 2))
    #expect(s.workload[0].streams == 1)
    #expect(s.expect == [KenshoScenario.Expectation(.orderedDelivery)])
    #expect(s.expect[0].rule == "KSP-3.2")
  }

  @Test("args, chunk values and summaries nest at most 500 deep: an adapter line carries them a few levels down")
  func valuesNestWithinLines() throws {
    func deep(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
    func scenario(args: String = "null", values: String = "[1]", summary: String = "null") -> String {
      """
      {"format": "kensho-scenario/1", "name": "deep",
       "agents": [{"name": "p", "methods": {"m": {"chunks": 1, "content": {"kind": "values", "values": \(values)},
         "finish": {"kind": "end", "summary": \(summary)}}}}, {"name": "c"}],
       "workload": [{"consumers": "c", "producers": "p", "method": "m", "args": \(args)}],
       "expect": [{"check": "ordered_delivery"}]}
      """
    }
    #expect(problems(scenario(args: deep(500), values: "[\(deep(500))]", summary: deep(500))).isEmpty)
    let args = problems(scenario(args: deep(501)))
    #expect(args.map(\.path) == ["$.workload[0].args"], "\(args)")
    #expect(args.first?.expected == "the args nesting at most 500 arrays or objects deep")
    #expect(args.first?.found == "501 deep")
    #expect(problems(scenario(values: "[1, \(deep(501))]")).map(\.path) == ["$.agents[0].methods.m.content.values[1]"])
    #expect(problems(scenario(summary: deep(501))).map(\.path) == ["$.agents[0].methods.m.finish.summary"])
  }

  @Test("every problem is reported with the file, the JSON path, what was found and expected")
  func problemsHavePaths() {
    let found = problems(
      """
      {"format": "kensho-scenario/9", "name": "bad",
       "agents": [{"name": "p", "methods": {"m": {"chunks": "many", "finish": {"kind": "explode"}}}}, {"name": "c"}],
       "workload": [{"consumers": "c", "producers": "q", "method": "m", "streams": 0}],
       "expect": [{"check": "outcome", "terminal": "maybe"}, {"metric": "latency_p99_us", "max": "low"}],
       "extra": 1}
      """)
    let paths = Set(found.map(\.path))
    #expect(
      paths.isSuperset(of: [
        "$.format", "$.extra", "$.agents[0].methods.m.chunks", "$.agents[0].methods.m.finish.kind",
        "$.workload[0].streams", "$.workload[0].producers", "$.expect[0].terminal", "$.expect[1].max",
      ]), "\(found)")
    #expect(found.allSatisfy { $0.file == "x.json" })
    let format = found.first { $0.path == "$.format" }
    #expect(format?.expected == "\"kensho-scenario/1\"")
    #expect(format?.found == "\"kensho-scenario/9\"")
    #expect(format?.description == "x.json: $.format: expected \"kensho-scenario/1\", found \"kensho-scenario/9\"")
  }

  @Test("malformed JSON is one problem, at its line and column (not a byte offset), naming what was found")
  func malformedJSON() {
    let found = problems("{\"format\": ")
    #expect(found.count == 1)
    #expect(found.first?.path == "line 1, column 12")
    #expect(found.first?.expected == "a value (the file is not valid JSON)")
    #expect(found.first?.found == "the end of the text")
    // Columns count characters, not bytes; lines count line feeds.
    let later = problems("{\n  \"name\": \"é\",\n  \"format\": kensho\n}")
    #expect(later.first?.path == "line 3, column 13", "\(later)")
    #expect(later.first?.found == "\"k\"")
    let accented = problems("{\"é\": é}")
    #expect(accented.first?.path == "line 1, column 7", "\(accented)")
    #expect(accented.first?.found == "\"é\"")
  }

  @Test("a missing file is a problem, not a crash")
  func missingFile() {
    #expect(throws: ScenarioLoadError.self) { try ScenarioLoader.load(file: "/nonexistent/scenario.json") }
    #expect(throws: ScenarioLoadError.self) { try ScenarioLoader.files(in: ["/nonexistent"]) }
  }

  @Test("the JSON Schema is valid JSON naming the format")
  func schemaShipped() throws {
    let text = ScenarioSchema.text
    let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    #expect(json?["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
    #expect(text.contains("kensho-scenario/1"))
  }
}

@Suite("Scenario loading: variants take only their own members")
struct VariantMemberTests {
  @Test("content and finish kinds reject members of other kinds; end outcomes take no code")
  func variantsAreStrict() {
    let json = """
      {"format": "kensho-scenario/1", "name": "v",
       "agents": [{"name": "p", "methods": {"m": {"chunks": 1, "content": {"kind": "sequence", "size": 4},
                   "finish": {"kind": "hang", "error": {"name": "x", "message": "y"}}}}}, {"name": "c"}],
       "workload": [{"consumers": "c", "producers": "p", "method": "m"}],
       "expect": [{"check": "outcome", "terminal": "end", "code": "X"}, {"metric": "chunks_delivered", "min": 5, "max": 1}]}
      """
    var paths: Set<String> = []
    do {
      _ = try ScenarioLoader.load(data: Data(json.utf8), file: "v.json")
    } catch {
      paths = Set(error.problems.map(\.path))
    }
    #expect(
      paths == [
        "$.agents[0].methods.m.content.size", "$.agents[0].methods.m.finish.error", "$.expect[0].code",
        "$.expect[1].min",
      ])
  }
}
