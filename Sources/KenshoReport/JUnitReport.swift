import Foundation
import FoundationXML
import KenshoHarness
import KenshoVerdict

/// JUnit XML: a test suite per scenario, a test case per check. A failed check carries its
/// rule id and message; an unsupported one is skipped; a scenario that could not finish is an
/// error.
public enum JUnitReport {
  public static func render(_ report: RunReport) -> String {
    let root = XMLElement(name: "testsuites")
    root.addAttribute(attribute("name", "kensho-bench \(report.run.implementation)"))
    root.addAttribute(attribute("tests", "\(report.scenarios.reduce(0) { $0 + $1.checks.count })"))
    root.addAttribute(attribute("failures", "\(count(report, .fail))"))
    root.addAttribute(attribute("errors", "\(count(report, .error))"))
    for scenario in report.scenarios {
      let suite = XMLElement(name: "testsuite")
      suite.addAttribute(attribute("name", scenario.name))
      suite.addAttribute(attribute("tests", "\(scenario.checks.count)"))
      suite.addAttribute(attribute("failures", "\(scenario.checks.filter { $0.verdict == .fail }.count)"))
      suite.addAttribute(attribute("errors", "\(scenario.checks.filter { $0.verdict == .error }.count)"))
      suite.addAttribute(
        attribute(
          "skipped", "\(scenario.checks.filter { $0.verdict == .unsupported || $0.verdict == .untested }.count)"))
      suite.addAttribute(attribute("time", String(format: "%.3f", scenario.metrics.wallSeconds)))
      if let file = scenario.file { suite.addAttribute(attribute("file", file)) }
      for check in scenario.checks {
        let testcase = XMLElement(name: "testcase")
        testcase.addAttribute(attribute("classname", scenario.name))
        testcase.addAttribute(attribute("name", "\(check.rule) \(check.name)"))
        let message = "\(check.rule) \(check.name): expected \(check.expected); observed \(check.observed)"
        let text = message + (check.detail.map { "\n\($0)" } ?? "")
        switch check.verdict {
        case .pass: break
        case .nonStrict:
          testcase.addChild(
            XMLElement(name: "system-out", stringValue: sanitized("NON-STRICT (a SHOULD rule): " + text)))
        case .unsupported, .untested:
          let skipped = XMLElement(name: "skipped")
          skipped.addAttribute(attribute("message", "\(check.verdict.label): " + (check.detail ?? message)))
          testcase.addChild(skipped)
        case .fail, .error:
          let failure = XMLElement(name: check.verdict == .fail ? "failure" : "error", stringValue: sanitized(text))
          failure.addAttribute(attribute("message", message))
          failure.addAttribute(attribute("type", check.rule))
          testcase.addChild(failure)
        }
        suite.addChild(testcase)
      }
      root.addChild(suite)
    }
    let document = XMLDocument(rootElement: root)
    document.version = "1.0"
    document.characterEncoding = "UTF-8"
    return document.xmlString(options: [.nodePrettyPrint])
  }

  static func count(_ report: RunReport, _ verdict: Verdict) -> Int {
    report.scenarios.reduce(0) { $0 + $1.checks.filter { $0.verdict == verdict }.count }
  }

  /// XML 1.0 cannot hold most control characters, even escaped.
  static func sanitized(_ value: String) -> String {
    String(value.unicodeScalars.map { $0.value < 0x20 && $0 != "\n" && $0 != "\t" ? "\u{FFFD}" : Character($0) })
  }

  static func attribute(_ name: String, _ value: String) -> XMLNode {
    let clean = sanitized(value)
    let node = XMLNode(kind: .attribute)
    node.name = name
    node.stringValue = clean
    return node
  }
}
