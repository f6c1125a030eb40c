import Foundation
import KenshoHarness
import KenshoVerdict

/// JUnit XML: a test suite per scenario, a test case per check. A failed check carries its
/// rule id and message; an unsupported one is skipped; a scenario that could not finish is an
/// error. An interrupted run adds a suite `kensho-bench` whose one test case is an error, so
/// that CI never takes a partial report for a passing one; a run compared with `--baseline`
/// adds a suite `kensho-bench baseline`, a failed test case per regression (or one passing
/// test case when there is none).
///
/// Test case names are unique within their suite (`KSP-4.1 outcome`, then `KSP-4.1 outcome #2`),
/// so CI tools keep their history apart. The checks of a scenario are judged from one run, so
/// each test case's `time` is the scenario's wall-clock time shared equally among its checks:
/// a suite's time is its scenario's, and the root's the sum of its suites'. The root carries the
/// totals (`tests`, `failures`, `errors`, `skipped`, `time`) of every suite.
///
/// Every text is reduced to the characters XML 1.0 allows (``sanitized(_:)``), so the document
/// stays well-formed whatever an implementation sent.
public enum JUnitReport {
  /// The counts of a suite, added up for the root.
  struct Totals {
    var tests = 0
    var failures = 0
    var errors = 0
    var skipped = 0
    var seconds = 0.0

    mutating func add(_ other: Totals) {
      tests += other.tests
      failures += other.failures
      errors += other.errors
      skipped += other.skipped
      seconds += other.seconds
    }

    func annotate(_ element: Element) {
      for (name, value) in [
        ("tests", "\(tests)"), ("failures", "\(failures)"), ("errors", "\(errors)"), ("skipped", "\(skipped)"),
        ("time", JUnitReport.seconds(seconds)),
      ] {
        element.addAttribute(JUnitReport.attribute(name, value))
      }
    }
  }

  public static func render(_ report: RunReport) -> String {
    let root = Element(name: "testsuites")
    root.addAttribute(attribute("name", "kensho-bench \(report.run.implementation)"))
    var totals = Totals()
    var suites: [Element] = []
    if !report.complete {
      let (suite, t) = incomplete(report)
      suites.append(suite)
      totals.add(t)
    }
    for scenario in report.scenarios {
      let (suite, t) = self.suite(scenario)
      suites.append(suite)
      totals.add(t)
    }
    if report.baseline != nil || report.regressions != nil {
      let (suite, t) = baseline(report)
      suites.append(suite)
      totals.add(t)
    }
    totals.annotate(root)
    for suite in suites { root.addChild(suite) }
    var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
    root.write(into: &out, indent: 0)
    return out
  }

  static func suite(_ scenario: ScenarioResult) -> (Element, Totals) {
    let suite = Element(name: "testsuite")
    suite.addAttribute(attribute("name", scenario.name))
    var totals = Totals()
    totals.tests = scenario.checks.count
    totals.failures = scenario.checks.filter { $0.verdict == .fail }.count
    totals.errors = scenario.checks.filter { $0.verdict == .error }.count
    totals.skipped = scenario.checks.filter { $0.verdict == .unsupported || $0.verdict == .untested }.count
    let wall = scenario.metrics.wallSeconds.isFinite ? max(0, scenario.metrics.wallSeconds) : 0
    totals.seconds = wall
    totals.annotate(suite)
    if let file = scenario.file { suite.addAttribute(attribute("file", file)) }
    let share = scenario.checks.isEmpty ? 0 : wall / Double(scenario.checks.count)
    let names = uniqueNames(scenario.checks.map { sanitized("\($0.rule) \($0.name)") })
    for (check, name) in zip(scenario.checks, names) {
      let testcase = Element(name: "testcase")
      testcase.addAttribute(attribute("classname", scenario.name))
      testcase.addAttribute(attribute("name", name))
      testcase.addAttribute(attribute("time", seconds(share)))
      let message = "\(check.rule) \(check.name): expected \(check.expected); observed \(check.observed)"
      let text = message + (check.detail.map { "\n\($0)" } ?? "")
      switch check.verdict {
      case .pass: break
      case .nonStrict:
        testcase.addChild(
          Element(name: "system-out", stringValue: sanitized("NON-STRICT (a SHOULD rule): " + text)))
      case .unsupported, .untested:
        let skipped = Element(name: "skipped")
        skipped.addAttribute(attribute("message", "\(check.verdict.label): " + (check.detail ?? message)))
        testcase.addChild(skipped)
      case .fail, .error:
        let failure = Element(name: check.verdict == .fail ? "failure" : "error", stringValue: sanitized(text))
        failure.addAttribute(attribute("message", message))
        failure.addAttribute(attribute("type", check.rule))
        testcase.addChild(failure)
      }
      suite.addChild(testcase)
    }
    return (suite, totals)
  }

  /// The suite of the comparison with `--baseline`.
  static func baseline(_ report: RunReport) -> (Element, Totals) {
    let suite = Element(name: "testsuite")
    suite.addAttribute(attribute("name", "kensho-bench baseline"))
    let regressions = report.regressions ?? []
    var totals = Totals()
    totals.tests = max(1, regressions.count)
    totals.failures = regressions.count
    totals.annotate(suite)
    if let file = report.baseline?.file { suite.addAttribute(attribute("file", file)) }
    let notes = (report.baseline?.notes ?? []).joined(separator: "\n")
    if regressions.isEmpty {
      let testcase = Element(name: "testcase")
      testcase.addAttribute(attribute("classname", "kensho-bench baseline"))
      testcase.addAttribute(attribute("name", "no regression"))
      testcase.addAttribute(attribute("time", seconds(0)))
      if !notes.isEmpty { testcase.addChild(Element(name: "system-out", stringValue: sanitized(notes))) }
      suite.addChild(testcase)
    }
    let names = uniqueNames(regressions.map { sanitized("\($0.scenario) \($0.metric)") })
    for (r, name) in zip(regressions, names) {
      let testcase = Element(name: "testcase")
      testcase.addAttribute(attribute("classname", "kensho-bench baseline"))
      testcase.addAttribute(attribute("name", name))
      testcase.addAttribute(attribute("time", seconds(0)))
      let message =
        "\(r.metric) of \(r.scenario): baseline \(number(r.baseline)), now \(number(r.current)) (allowed \(r.allowed)"
        + (r.rule.map { "; compared \($0)" } ?? "") + ")"
      let failure = Element(name: "failure", stringValue: sanitized(message + (notes.isEmpty ? "" : "\n" + notes)))
      failure.addAttribute(attribute("message", message))
      failure.addAttribute(attribute("type", "REGRESSION"))
      testcase.addChild(failure)
      suite.addChild(testcase)
    }
    return (suite, totals)
  }

  /// `names` with a ` #2`, ` #3`… after every repeat of a name, so that each is unique (a
  /// suffixed name that is itself taken gets the next number). Names must be sanitized first:
  /// two names that differ only in characters XML cannot hold would become one.
  static func uniqueNames(_ names: [String]) -> [String] {
    var taken = Set(names)
    var seen: Set<String> = []
    var next: [String: Int] = [:]
    return names.map { name in
      if seen.insert(name).inserted { return name }
      var n = next[name, default: 2]
      while taken.contains("\(name) #\(n)") { n += 1 }
      next[name] = n + 1
      let unique = "\(name) #\(n)"
      taken.insert(unique)
      return unique
    }
  }

  static func seconds(_ value: Double) -> String {
    String(format: "%.3f", value.isFinite ? max(0, value) : 0)
  }

  static func number(_ value: Double) -> String {
    value == value.rounded() && value.magnitude < 1e15 ? String(Int64(value)) : String(format: "%.3f", value)
  }

  /// The suite that marks an interrupted run.
  static func incomplete(_ report: RunReport) -> (Element, Totals) {
    let suite = Element(name: "testsuite")
    suite.addAttribute(attribute("name", "kensho-bench"))
    var totals = Totals()
    totals.tests = 1
    totals.errors = 1
    totals.annotate(suite)
    let testcase = Element(name: "testcase")
    testcase.addAttribute(attribute("classname", "kensho-bench"))
    testcase.addAttribute(attribute("name", "run complete"))
    testcase.addAttribute(attribute("time", seconds(0)))
    let message =
      "the run was interrupted" + (report.interruptedBy.map { " by \($0)" } ?? "")
      + "; this report covers only the \(report.scenarios.count) scenarios listed"
    let error = Element(name: "error", stringValue: sanitized(message))
    error.addAttribute(attribute("message", message))
    error.addAttribute(attribute("type", "INCOMPLETE"))
    testcase.addChild(error)
    suite.addChild(testcase)
    return (suite, totals)
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

  static func attribute(_ name: String, _ value: String) -> (name: String, value: String) {
    (name, sanitized(value))
  }

  /// One element of the report, written as text. FoundationXML (libxml2) is not used: it
  /// crashed the process once (a general protection fault in libxml2 while an interrupted run
  /// wrote its reports under load), and a JUnit report needs only elements, attributes and
  /// escaped text.
  final class Element {
    let name: String
    private var attributes: [(name: String, value: String)] = []
    private var children: [Element] = []
    private let text: String?

    init(name: String, stringValue: String? = nil) {
      self.name = name
      self.text = stringValue
    }

    func addAttribute(_ attribute: (name: String, value: String)) { attributes.append(attribute) }
    func addChild(_ child: Element) { children.append(child) }

    /// The element, indented by `indent` levels; text stays inline, exactly as given.
    func write(into out: inout String, indent: Int) {
      let pad = String(repeating: "    ", count: indent)
      out += pad + "<" + name
      for a in attributes { out += " \(a.name)=\"" + Element.escape(a.value, attribute: true) + "\"" }
      if let text {
        out += ">" + Element.escape(text, attribute: false) + "</\(name)>\n"
      } else if children.isEmpty {
        out += "/>\n"
      } else {
        out += ">\n"
        for child in children { child.write(into: &out, indent: indent + 1) }
        out += pad + "</\(name)>\n"
      }
    }

    /// `value` escaped for XML text or a double-quoted attribute, where line breaks and tabs
    /// are written as references (a reader would turn them into spaces). Unlike
    /// ``Markup/escape(_:)`` (HTML), every character XML 1.0 allows is kept as it is.
    static func escape(_ value: String, attribute: Bool) -> String {
      var out = ""
      out.reserveCapacity(value.utf8.count)
      for scalar in value.unicodeScalars {
        switch (scalar, attribute) {
        case ("&", _): out += "&amp;"
        case ("<", _): out += "&lt;"
        case (">", _): out += "&gt;"
        case ("\r", _): out += "&#13;"
        case ("\"", true): out += "&quot;"
        case ("\n", true): out += "&#10;"
        case ("\t", true): out += "&#9;"
        default: out.unicodeScalars.append(scalar)
        }
      }
      return out
    }
  }
}
