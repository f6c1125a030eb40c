public import Foundation
public import KenshoHarness

/// The relay load report: relay-load.json (every step) and relay-load.html (a table of each
/// relay's capacity by client count, and charts of forwarded throughput and p99 latency
/// against the offered rate).
public enum RelayLoadReport {
  /// Writes both files into `folder`; returns their paths.
  public static func write(_ results: [RelayLoadResult], to folder: URL) throws -> [String] {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let json = folder.appendingPathComponent("relay-load.json")
    try encoder.encode(results).write(to: json)
    let html = folder.appendingPathComponent("relay-load.html")
    try Data(page(results).utf8).write(to: html)
    return [json.path, html.path]
  }

  /// The capacity table as plain text, for the terminal.
  public static func table(_ results: [RelayLoadResult]) -> String {
    let counts = Array(Set(results.flatMap { $0.capacity.keys })).sorted()
    var lines = ["relay" + counts.map { " | \($0) clients" }.joined()]
    for r in results {
      lines.append(
        r.relay + counts.map { c in " | " + shown(r.capacity[c]) + cpu(r.cpuUsPerFrame[c]) }.joined())
    }
    return lines.joined(separator: "\n")
  }

  /// The relay's CPU per forwarded frame at capacity, and what one core of it would forward.
  static func cpu(_ us: Double?) -> String {
    guard let us, us > 0 else { return "" }
    return String(format: " (%.2f µs CPU a frame: ", us) + Units.count(Int(1e6 / us)) + "/s a core)"
  }

  /// A capacity as shown: frames/s, or that no step stayed within the bound.
  static func shown(_ capacity: Double?) -> String {
    guard let capacity else { return "—" }
    return capacity > 0 ? Units.count(Int(capacity)) + " frames/s" : "none within the bound"
  }

  static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

  static func page(_ results: [RelayLoadResult]) -> String {
    let counts = Array(Set(results.flatMap { $0.capacity.keys })).sorted()
    var rows: [Markup] = [
      .el("tr", [], [.el("th", [], text: "relay")] + counts.map { .el("th", [], text: "\($0) clients") })
    ]
    for r in results {
      rows.append(
        .el(
          "tr", [],
          [.el("td", [], text: r.relay)]
            + counts.map { c in
              .el(
                "td", [("title", r.stoppedBecause[c] ?? "")],
                text: shown(r.capacity[c]) + cpu(r.cpuUsPerFrame[c]))
            }))
    }
    var charts: [Markup] = []
    for c in counts {
      var throughput: [Chart.Series] = []
      var p99: [Chart.Series] = []
      for (i, r) in results.enumerated() {
        let steps = r.steps.filter { $0.clients == c }
        let color = colors[i % colors.count]
        throughput.append(
          Chart.Series(name: r.relay, color: color, points: steps.map { ($0.offeredPerSecond, $0.forwardedPerSecond) }))
        p99.append(Chart.Series(name: r.relay, color: color, points: steps.map { ($0.offeredPerSecond, $0.p99Us) }))
      }
      charts.append(.el("h2", [], text: "\(c) clients"))
      charts.append(
        Chart.line(
          title: "forwarded frames/s against offered, \(c) clients", x: .linear(.count, label: "offered frames/s"),
          y: .count, yLabel: "forwarded frames/s", series: throughput))
      charts.append(
        Chart.line(
          title: "p99 latency against offered rate, \(c) clients", x: .linear(.count, label: "offered frames/s"),
          y: .durationUs, yLabel: "p99 latency", series: p99))
    }
    var steps: [Markup] = [
      .el(
        "tr", [],
        ["relay", "clients", "offered/s", "sent/s", "forwarded/s", "lost", "p50", "p99", "p99.9", "max"].map {
          .el("th", [], text: $0)
        })
    ]
    for r in results {
      for s in r.steps {
        steps.append(
          .el(
            "tr", [],
            [
              r.relay, "\(s.clients)", Units.count(Int(s.offeredPerSecond)), Units.count(Int(s.sentPerSecond)),
              Units.count(Int(s.forwardedPerSecond)), "\(s.lost)", Units.duration(us: s.p50Us),
              Units.duration(us: s.p99Us), Units.duration(us: s.p999Us), Units.duration(us: s.maxUs),
            ].map { .el("td", [], text: $0) }))
      }
    }
    let body: Markup = .el(
      "body", [],
      [
        .el("h1", [], text: "Relay capacity"),
        .el(
          "p", [],
          text:
            "Each relay's highest forwarded rate (frames received by all clients per second) at which p99 latency stayed "
            + "within the bound and no frame was lost; hover a cell for why its ramp stopped."),
        .el("table", [], rows),
      ] + charts + [.el("h2", [], text: "Every step"), .el("table", [], steps)])
    let style =
      "body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
      + "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
    return "<!doctype html>\n"
      + Markup.el(
        "html", [("lang", "en")],
        [
          .el(
            "head", [],
            [
              .el("meta", [("charset", "utf-8")]), .el("title", [], text: "kensho-bench relay load"),
              // The main report's stylesheet draws the charts; this page adds its tables.
              .el("style", [], [.constant(HTMLReport.css)]), .el("style", [], text: style),
            ]),
          body,
        ]
      ).render()
  }
}
