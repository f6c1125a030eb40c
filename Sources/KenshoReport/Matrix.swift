public import Foundation
import KenshoHarness
import KenshoProtocol
import KenshoVerdict

/// The conformance matrix: implementations by rules, each cell graded OK, NON-STRICT, FAILED,
/// UNSUPPORTED or UNTESTED and linked to its evidence in that implementation's HTML report.
public enum ConformanceMatrix {
  public struct Column: Sendable {
    public var implementation: String
    /// The HTML report the cells link to, relative to the matrix.
    public var link: String?
    public var report: RunReport

    public init(implementation: String, link: String?, report: RunReport) {
      self.implementation = implementation
      self.link = link
      self.report = report
    }
  }

  /// The matrix as JSON: `{ "format": "kensho-matrix/1", "implementations": [...], "rules": [{id, level, grades}] }`.
  public static func json(_ columns: [Column]) throws -> Data {
    let rules: [JSONValue] = KSPRule.all.map { rule in
      .object([
        "id": .string(rule.id), "level": .string(rule.level.rawValue),
        "grades": .array(
          columns.map { c in .string((c.report.rules.first { $0.id == rule.id }?.grade ?? .untested).rawValue) }),
      ])
    }
    return try KenshoCodec.encode(
      .object([
        "format": "kensho-matrix/1", "implementations": .array(columns.map { .string($0.implementation) }),
        "rules": .array(rules),
      ]))
  }

  public static func html(_ columns: [Column]) -> String {
    let header = Markup.el(
      "tr", [],
      [.el("th", text: "rule"), .el("th", text: "level")] + columns.map { .el("th", text: $0.implementation) })
    let rows: [Markup] = KSPRule.all.map { rule in
      .el(
        "tr", [],
        [.el("td", [("title", rule.text)], text: rule.id), .el("td", text: rule.level.rawValue)]
          + columns.map { c in
            let grade = c.report.rules.first { $0.id == rule.id }
            let word = (grade?.grade ?? .untested).label
            let label = Markup.el("span", [("class", "grade \(word)")], text: word)
            let evidence = (grade?.evidence ?? []).joined(separator: "\n")
            guard let link = c.link else { return .el("td", [("title", evidence)], [label]) }
            return .el("td", [("title", evidence)], [.el("a", [("href", "\(link)#rule-\(rule.id)")], [label])])
          })
    }
    let page = Markup.el(
      "html", [("lang", "en")],
      [
        .el(
          "head", [],
          [
            .el("meta", [("charset", "utf-8")]), .el("title", text: "KSP/1 conformance matrix"),
            .el("style", [], [.constant(css)]),
          ]),
        .el(
          "body", [],
          [
            .el("h1", text: "KSP/1 conformance matrix"),
            .el("table", [], [.el("thead", [], [header]), .el("tbody", [], rows)]),
          ]),
      ])
    return "<!DOCTYPE html>\n" + page.render()
  }

  static let css: StaticString = """
    body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px}
    table{border-collapse:collapse}th,td{border:1px solid #e3e3e3;padding:4px 10px;text-align:left}th{background:#f6f6f6}
    td:first-child{white-space:nowrap}
    .grade{font-weight:700;font-size:12px}.grade.OK{color:#2e7d32}.grade.FAILED{color:#c62828}
    .grade.NON-STRICT{color:#ef6c00}.grade.UNTESTED,.grade.UNSUPPORTED{color:#90a4ae}a{text-decoration:none}
    """
}
