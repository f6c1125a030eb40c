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

  @Test("a baseline comparison finds a throughput drop beyond the allowed fraction, and nothing within it")
  func baselineRegression() {
    var fast = result(name: "s", verdict: .pass, checks: [])
    fast.metrics.chunksPerSecond = 10_000
    let baseline = report([fast])
    let slow = result(name: "s", verdict: .pass, checks: [])  // 1 000 chunks/s
    let found = BaselineComparison.regressions(current: [slow], baseline: baseline, defaultLimit: 0.25)
    #expect(found.map(\.metric) == ["chunks_per_second"])
    #expect(BaselineComparison.regressions(current: [slow], baseline: baseline, defaultLimit: 0.95).isEmpty)
    #expect(
      BaselineComparison.regressions(
        current: [slow], baseline: baseline, defaultLimit: 0.25, limits: ["s": [.chunksPerSecond: 0.95]]
      ).isEmpty, "a scenario's own limit overrides the command line's")
  }
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
