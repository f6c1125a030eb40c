import Foundation
import FoundationXML
import KenshoHarness
import KenshoReport
import KenshoScenario
import KenshoVerdict
import Testing

@Suite("Reports")
struct ReportTests {
  func result(name: String, verdict: Verdict, checks: [CheckResult]) -> ScenarioResult {
    var metrics = Metrics()
    metrics.chunksDelivered = 10
    metrics.chunksPerSecond = 1_000
    return ScenarioResult(
      name: name, file: nil, description: "<b>bold</b> & \"quoted\"", seed: 1, timeMode: "virtual", verdict: verdict,
      checks: checks, metrics: metrics, samples: [])
  }

  func report(_ results: [ScenarioResult], complete: Bool = true) -> RunReport {
    RunReport(
      results: results,
      metadata: RunReport.Metadata(
        implementation: "test", seed: nil, startedAt: Date(timeIntervalSince1970: 0),
        finishedAt: Date(timeIntervalSince1970: 1),
        arguments: [], jemalloc: nil),
      complete: complete)
  }

  let hostile = CheckResult(
    name: "outcome", rule: "KSP-5.2", level: .must, verdict: .fail, expected: "onError code \"X\"",
    observed: "<script>alert('x')</script>", detail: "\" onmouseover=\"alert(1)")

  @Test("the HTML escapes everything that came from a run")
  func htmlEscapes() {
    let html = HTMLReport.render(
      report([result(name: "<img src=x onerror=alert(1)>", verdict: .fail, checks: [hostile])]))
    #expect(!html.contains("<script>"))
    #expect(!html.contains("<img src=x"))
    #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
    #expect(html.contains("&quot; onmouseover=&quot;alert(1)"))
    #expect(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"))
    #expect(!html.contains("http://") && !html.contains("https://"), "self-contained: no external assets")
    #expect(html.hasPrefix("<!DOCTYPE html>"))
  }

  @Test("an interrupted run says so in every format")
  func incompleteIsMarked() throws {
    let r = report([result(name: "a", verdict: .pass, checks: [])], complete: false)
    #expect(HTMLReport.render(r).contains("Incomplete run"))
    let json = try JSONSerialization.jsonObject(with: try r.json()) as? [String: Any]
    #expect(json?["complete"] as? Bool == false)
  }

  @Test("JUnit: one testcase per check; a failure carries the rule id and the message")
  func junit() throws {
    let pass = CheckResult(
      name: "ordered_delivery", rule: "KSP-3.2", level: .must, verdict: .pass, expected: "e", observed: "o")
    let xml = JUnitReport.render(report([result(name: "s", verdict: .fail, checks: [pass, hostile])]))
    let doc = try XMLDocumentParser(xml)
    #expect(doc.count("testcase") == 2)
    #expect(doc.count("failure") == 1)
    #expect(xml.contains("type=\"KSP-5.2\""))
    #expect(xml.contains("KSP-5.2 outcome: expected onError code &quot;X&quot;"))
  }

  @Test("JUnit: attribute values and text come back exactly from a parser: quotes, &, <, >, line breaks, tabs")
  func junitEscapes() throws {
    let tricky = "a\"b&c<d>e\nf\tg\r\nh ]]> 'i'"
    let check = CheckResult(
      name: "outcome", rule: "KSP-4.1", level: .must, verdict: .fail, expected: "x", observed: tricky)
    let xml = JUnitReport.render(report([result(name: "s&<\"", verdict: .fail, checks: [check])]))
    final class Delegate: NSObject, XMLParserDelegate {
      var message: String?
      var suite: String?
      var text = ""
      var inFailure = false
      func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
      ) {
        if name == "failure" {
          message = attributes["message"]
          inFailure = true
        }
        if name == "testsuite" { suite = attributes["name"] }
      }
      func parser(_ parser: XMLParser, foundCharacters string: String) { if inFailure { text += string } }
      func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "failure" { inFailure = false }
      }
    }
    let parser = XMLParser(data: Data(xml.utf8))
    let delegate = Delegate()
    parser.delegate = delegate
    #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? ""): \(xml)")
    #expect(delegate.message == "KSP-4.1 outcome: expected x; observed \(tricky)")
    #expect(delegate.text == "KSP-4.1 outcome: expected x; observed \(tricky)")
    #expect(delegate.suite == "s&<\"")
  }

  @Test("JUnit stays well-formed XML 1.0 whatever an implementation sent: U+FFFE, U+FFFF, C0 controls")
  func junitCharacters() throws {
    let hostile = "a\u{FFFE}b\u{FFFF}c\u{0}d\u{1B}[31me\u{8}f\u{B}\u{C}g\u{1F}h"
    let kept = "tab\there\nline\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}\u{85}é"
    let check = CheckResult(
      name: "outcome\u{FFFF}", rule: "KSP-5.2", level: .must, verdict: .fail, expected: hostile, observed: kept,
      detail: hostile)
    let skipped = CheckResult(
      name: "x", rule: "KSP-1.1", level: .must, verdict: .unsupported, expected: hostile, observed: hostile)
    let warn = CheckResult(
      name: "y", rule: "KSP-3.4", level: .should, verdict: .nonStrict, expected: hostile, observed: hostile)
    var r = result(name: "s\u{FFFE}\u{1}", verdict: .fail, checks: [check, skipped, warn])
    r.file = "f\u{FFFF}.json"
    let xml = JUnitReport.render(report([r]))
    let doc = try XMLDocumentParser(xml)
    #expect(doc.count("testcase") == 3)
    for forbidden: Unicode.Scalar in ["\u{FFFE}", "\u{FFFF}", "\u{0}", "\u{1B}", "\u{8}", "\u{B}", "\u{C}", "\u{1F}"] {
      #expect(!xml.unicodeScalars.contains(forbidden), "U+\(String(forbidden.value, radix: 16))")
    }
    #expect(xml.unicodeScalars.allSatisfy(JUnitReport.isXMLChar))
    #expect(xml.contains("\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}"), "allowed characters are kept")
    #expect(JUnitReport.sanitized("a\u{FFFE}b") == "a\u{FFFD}b")
    #expect(!HTMLReport.render(report([r])).unicodeScalars.contains("\u{FFFF}"))
  }

  @Test("an interrupted run is an error in the JUnit XML, with the signal")
  func junitIncomplete() throws {
    var r = report([result(name: "a", verdict: .pass, checks: [])], complete: false)
    r.interruptedBy = "SIGTERM"
    let xml = JUnitReport.render(r)
    let doc = try XMLDocumentParser(xml)
    #expect(doc.count("error") == 1)
    #expect(xml.contains("the run was interrupted by SIGTERM; this report covers only the 1 scenarios listed"))
    #expect(xml.contains("<testsuites") && xml.contains("errors=\"1\""))
    let json = try JSONSerialization.jsonObject(with: try r.json()) as? [String: Any]
    #expect(json?["interruptedBy"] as? String == "SIGTERM")
    let complete = JUnitReport.render(report([result(name: "a", verdict: .pass, checks: [])]))
    #expect(try XMLDocumentParser(complete).count("error") == 0)
  }

  @Test("wall-clock figures: compared only over repeats, a regression only when the best is worse than the worst")
  func baselineRegression() {
    func run(_ chunksPerSecond: [Double]) -> ScenarioResult {
      var r = result(name: "s", verdict: .pass, checks: [])
      r.metrics.chunksPerSecond = chunksPerSecond[0]
      if chunksPerSecond.count > 1 { r.figures = ["chunks_per_second": chunksPerSecond] }
      return r
    }
    let compare = { (now: ScenarioResult, before: ScenarioResult, limit: Double) in
      BaselineComparison.compare(current: [now], baseline: report([before]), defaultLimit: limit)
    }
    // One run on either side: noise, not compared, and said so.
    let single = compare(run([1_000]), run([10_000]), 0.25)
    #expect(single.regressions.isEmpty)
    #expect(single.summary.notRepeated >= 1)
    #expect(single.summary.notes.contains { $0.contains("--repeat") })
    // Best now 1 200 < worst before 9 000 × 0.75: a regression, reported with the values the rule used.
    let slower = compare(run([1_000, 1_200]), run([10_000, 9_000]), 0.25)
    #expect(slower.regressions.map(\.metric) == ["chunks_per_second"])
    #expect(slower.regressions.first?.baseline == 9_000)
    #expect(slower.regressions.first?.current == 1_200)
    #expect(slower.regressions.first?.rule == "best of 2 runs vs worst of 2")
    #expect(compare(run([1_000, 1_200]), run([10_000, 9_000]), 0.95).regressions.isEmpty)
    // Overlapping ranges are noise: best now 9 500 is within 25 % of worst before 10 000.
    #expect(compare(run([6_000, 9_500]), run([10_000, 12_000]), 0.25).regressions.isEmpty)
    #expect(
      BaselineComparison.regressions(
        current: [run([1_000, 1_200])], baseline: report([run([10_000, 9_000])]), defaultLimit: 0.25,
        limits: ["s": [.chunksPerSecond: 0.95]]
      ).isEmpty, "a scenario's own limit overrides the command line's")
  }

  @Test("every metric a scenario can give a regression limit for is a figure the comparison reads it for")
  func everyRegressionLimitIsRead() {
    let read = Set(BaselineComparison.figures.compactMap(\.limitKey))
    #expect(
      Set(Metric.allCases).subtracting(read).isEmpty, "limits never read: \(Set(Metric.allCases).subtracting(read))")
  }

  @Test("deterministic figures compare exactly from one run, only with the baseline's seed; counts must be equal")
  func baselineDeterministic() {
    func run(p99: Double, delivered: Int = 10, seed: UInt64 = 1) -> ScenarioResult {
      var r = result(name: "s", verdict: .pass, checks: [])
      r.seed = seed
      r.metrics.chunksDelivered = delivered
      r.metrics.chunkLatencyCorrected = LatencySummary(
        count: 10, p50: p99 / 2, p90: p99, p99: p99, p999: p99, max: p99, mean: p99 / 2)
      return r
    }
    let same = BaselineComparison.compare(current: [run(p99: 500)], baseline: report([run(p99: 500)]), defaultLimit: 0)
    #expect(same.regressions.isEmpty, "a run compared with itself")
    #expect(same.summary.exact >= 3)
    let slower = BaselineComparison.regressions(
      current: [run(p99: 700)], baseline: report([run(p99: 500)]), defaultLimit: 0.25)
    #expect(
      Set(slower.map(\.metric)) == ["scenario_latency_p50_us", "scenario_latency_p99_us", "scenario_latency_max_us"])
    #expect(
      BaselineComparison.regressions(current: [run(p99: 600)], baseline: report([run(p99: 500)]), defaultLimit: 0.25)
        .isEmpty, "20 % worse is within 25 %")
    #expect(slower.allSatisfy { $0.rule == "exact (deterministic)" })
    let fewer = BaselineComparison.regressions(
      current: [run(p99: 500, delivered: 9)], baseline: report([run(p99: 500)]), defaultLimit: 1000)
    #expect(fewer.map(\.metric) == ["chunks_delivered"], "a count differs: any change, whatever the limit")
    let otherSeed = BaselineComparison.compare(
      current: [run(p99: 700, seed: 2)], baseline: report([run(p99: 500)]), defaultLimit: 0.25)
    #expect(otherSeed.regressions.isEmpty)
    #expect(otherSeed.summary.notComparable >= 3)
    // A deterministic figure that varied between repeats is noise after all: best vs worst.
    var varied = run(p99: 700)
    varied.figures = ["scenario_latency_p99_us": [700, 400], "chunks_delivered": [10, 10]]
    var before = run(p99: 500)
    before.figures = ["scenario_latency_p99_us": [500, 500], "chunks_delivered": [10, 10]]
    let noisy = BaselineComparison.compare(current: [varied], baseline: report([before]), defaultLimit: 0.25)
    #expect(!noisy.regressions.contains { $0.metric == "scenario_latency_p99_us" })
    #expect(noisy.summary.notes.contains { $0.contains("varied between repeats") })
  }

  @Test("JUnit: names unique within a suite, a time per test case, the root's totals are its suites' sums")
  func junitTotals() throws {
    let outcome = CheckResult(
      name: "outcome", rule: "KSP-4.1", level: .must, verdict: .pass, expected: "e", observed: "o")
    let skipped = CheckResult(
      name: "x", rule: "KSP-1.1", level: .must, verdict: .untested, expected: "e", observed: "o")
    var a = result(name: "a", verdict: .fail, checks: [outcome, outcome, hostile, outcome, skipped])
    a.metrics.wallSeconds = 2.5
    var b = result(name: "b", verdict: .pass, checks: [outcome])
    b.metrics.wallSeconds = 0.5
    var r = report([a, b], complete: false)
    r.regressions = [
      Regression(scenario: "a", metric: "chunks_per_second", baseline: 2, current: 1, allowed: "≥ 75 %", rule: "r")
    ]
    r.baseline = BaselineSummary()
    let xml = JUnitReport.render(r)
    let doc = try JUnitDocument(xml)
    for suite in doc.suites {
      #expect(Set(suite.cases.map(\.name)).count == suite.cases.count, "\(suite.name): \(suite.cases.map(\.name))")
      #expect(suite.cases.allSatisfy { $0.time != nil }, "\(suite.name)")
      #expect(Int(suite.attributes["tests"] ?? "") == suite.cases.count)
    }
    let suiteA = try #require(doc.suites.first { $0.name == "a" })
    #expect(suiteA.cases.map(\.name).prefix(2) == ["KSP-4.1 outcome", "KSP-4.1 outcome #2"])
    #expect(suiteA.cases.map(\.name).contains("KSP-4.1 outcome #3"))
    #expect(abs(suiteA.cases.compactMap(\.time).reduce(0, +) - 2.5) < 0.01, "the checks share the scenario's time")
    for key in ["tests", "failures", "errors", "skipped"] {
      let sum = doc.suites.compactMap { Int($0.attributes[key] ?? "") }.reduce(0, +)
      #expect(Int(doc.root[key] ?? "") == sum, "\(key): root \(doc.root[key] ?? "none"), suites \(sum)")
    }
    #expect(Int(doc.root["tests"] ?? "") == doc.suites.reduce(0) { $0 + $1.cases.count })
    #expect(abs((Double(doc.root["time"] ?? "") ?? -1) - 3.0) < 0.01)
    let baseline = try #require(doc.suites.first { $0.name == "kensho-bench baseline" })
    #expect(baseline.attributes["failures"] == "1")
    #expect(xml.contains("type=\"REGRESSION\""))
    #expect(xml.unicodeScalars.allSatisfy(JUnitReport.isXMLChar))
    // Names that differ only in characters XML cannot hold stay apart once sanitized.
    let odd = CheckResult(name: "y\u{FFFE}", rule: "R", level: .must, verdict: .pass, expected: "", observed: "")
    let odd2 = CheckResult(name: "y\u{FFFF}", rule: "R", level: .must, verdict: .pass, expected: "", observed: "")
    let names =
      try JUnitDocument(JUnitReport.render(report([result(name: "c", verdict: .pass, checks: [odd, odd2])])))
      .suites.first?.cases.map(\.name) ?? []
    #expect(Set(names).count == 2, "\(names)")
  }

  @Test("regressions and the comparison's rule appear in the HTML")
  func htmlRegressions() {
    var r = report([result(name: "a", verdict: .pass, checks: [])])
    r.regressions = [
      Regression(scenario: "a", metric: "chunks_per_second", baseline: 2, current: 1, allowed: "≥ 75 %", rule: "rule")
    ]
    var summary = BaselineSummary()
    summary.notes = ["how figures were compared"]
    r.baseline = summary
    let html = HTMLReport.render(r)
    #expect(html.contains("1 regressions against the baseline"))
    #expect(html.contains("chunks_per_second"))
    #expect(html.contains("how figures were compared"))
  }
}

/// A JUnit document's root attributes, suites and test cases (parsing proves it well-formed).
struct JUnitDocument {
  struct Case {
    var name: String
    var time: Double?
  }
  struct Suite {
    var name: String
    var attributes: [String: String]
    var cases: [Case] = []
  }
  var root: [String: String] = [:]
  var suites: [Suite] = []

  init(_ text: String) throws {
    final class Delegate: NSObject, XMLParserDelegate {
      var document = JUnitDocument()
      func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
      ) {
        switch name {
        case "testsuites": document.root = attributes
        case "testsuite": document.suites.append(Suite(name: attributes["name"] ?? "", attributes: attributes))
        case "testcase":
          guard !document.suites.isEmpty else { return }
          document.suites[document.suites.count - 1].cases.append(
            Case(name: attributes["name"] ?? "", time: attributes["time"].flatMap(Double.init)))
        default: break
        }
      }
    }
    let parser = XMLParser(data: Data(text.utf8))
    let delegate = Delegate()
    parser.delegate = delegate
    guard parser.parse() else { throw parser.parserError ?? CocoaError(.coderReadCorrupt) }
    self = delegate.document
  }

  private init() {}
}

/// Counts elements by name in an XML document (parsing proves it well-formed).
struct XMLDocumentParser {
  let counts: [String: Int]

  init(_ text: String) throws {
    final class Delegate: NSObject, XMLParserDelegate {
      var counts: [String: Int] = [:]
      func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
      ) { counts[name, default: 0] += 1 }
    }
    let parser = XMLParser(data: Data(text.utf8))
    let delegate = Delegate()
    parser.delegate = delegate
    guard parser.parse() else { throw parser.parserError ?? CocoaError(.coderReadCorrupt) }
    counts = delegate.counts
  }

  func count(_ name: String) -> Int { counts[name] ?? 0 }
}
