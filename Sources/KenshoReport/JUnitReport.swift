import Foundation
import FoundationXML
import KenshoHarness
import KenshoVerdict

/// JUnit XML: a test suite per scenario, a test case per check. A failed check carries its
/// rule id and message; an unsupported one is skipped; a scenario that could not finish is an
/// error. An interrupted run adds a suite `kensho-bench` whose one test case is an error, so
/// that CI never takes a partial report for a passing one.
///
/// Every text is reduced to the characters XML 1.0 allows (``sanitized(_:)``), so the document
/// stays well-formed whatever an implementation sent.
public enum JUnitReport {
  public static func render(_ report: RunReport) -> String {
    let root = XMLElement(name: "testsuites")
    root.addAttribute(attribute("name", "kensho-bench \(report.run.implementation)"))
    root.addAttribute(attribute("tests", "\(report.scenarios.reduce(0) { $0 + $1.checks.count })"))
    root.addAttribute(attribute("failures", "\(count(report, .fail))"))
    root.addAttribute(attribute("errors", "\(count(report, .error) + (report.complete ? 0 : 1))"))
    if !report.complete { root.addChild(incomplete(report)) }
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

  /// The suite that marks an interrupted run.
  static func incomplete(_ report: RunReport) -> XMLElement {
    let suite = XMLElement(name: "testsuite")
    suite.addAttribute(attribute("name", "kensho-bench"))
    for (name, value) in [("tests", "1"), ("failures", "0"), ("errors", "1"), ("skipped", "0")] {
      suite.addAttribute(attribute(name, value))
    }
    let testcase = XMLElement(name: "testcase")
    testcase.addAttribute(attribute("classname", "kensho-bench"))
    testcase.addAttribute(attribute("name", "run complete"))
    let message =
      "the run was interrupted" + (report.interruptedBy.map { " by \($0)" } ?? "")
      + "; this report covers only the \(report.scenarios.count) scenarios listed"
    let error = XMLElement(name: "error", stringValue: sanitized(message))
    error.addAttribute(attribute("message", message))
    error.addAttribute(attribute("type", "INCOMPLETE"))
    testcase.addChild(error)
    suite.addChild(testcase)
    return suite
  }

  static func count(_ report: RunReport, _ verdict: Verdict) -> Int {
    report.scenarios.reduce(0) { $0 + $1.checks.filter { $0.verdict == verdict }.count }
  }

  /// `value` with U+FFFD in place of every character XML 1.0 cannot hold, even escaped: only
  /// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]` may appear.
  /// (Surrogates cannot occur in a Swift string.)
  public static func sanitized(_ value: String) -> String {
    guard value.unicodeScalars.contains(where: { !isXMLChar($0) }) else { return value }
    var out = String.UnicodeScalarView()
    for scalar in value.unicodeScalars { out.append(isXMLChar(scalar) ? scalar : "\u{FFFD}") }
    return String(out)
  }

  /// XML 1.0's `Char` production.
  public static func isXMLChar(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
    default: false
    }
  }

  static func attribute(_ name: String, _ value: String) -> XMLNode {
    let clean = sanitized(value)
    let node = XMLNode(kind: .attribute)
    node.name = name
    node.stringValue = clean
    return node
  }
}
