import Foundation
import KenshoHarness
import KenshoVerdict

/// The HTML report: one self-contained page (inline CSS and SVG, no scripts, no network) that
/// a person reads: summary, verdict per rule and per scenario, checks, metrics, charts, and the
/// message sequence of a sampled stream. Every string that came from a run is escaped.
public enum HTMLReport {
  public static func render(_ report: RunReport) -> String {
    let s = report.summary
    let title = "kensho-bench — \(report.run.implementation)"
    var body: [Markup] = [
      .el("h1", text: title),
      .el(
        "p", [("class", "meta")],
        text:
          "\(iso(report.run.startedAt)) · \(report.run.machine.hostname) · \(report.run.machine.cores) cores · "
          + "kensho-bench \(report.run.toolVersion)" + (report.run.seed.map { " · seed \($0)" } ?? "")),
    ]
    if !report.complete {
      body.append(
        .el("p", [("class", "banner")], text: "Incomplete run: interrupted; only the scenarios below were run."))
    }
    body.append(
      .el(
        "div", [("class", "summary")],
        [
          badge("verdict", s.verdict.label, s.verdict),
          badge("scenarios", "\(s.scenarios)", nil),
          badge("passed", "\(s.passed)", .pass),
          badge("failed", "\(s.failed)", s.failed > 0 ? .fail : nil),
          badge("errors", "\(s.errors)", s.errors > 0 ? .error : nil),
          badge("non-strict", "\(s.nonStrict)", s.nonStrict > 0 ? .nonStrict : nil),
          badge("unsupported", "\(s.unsupported)", nil),
        ]))
    if let regressions = report.regressions, !regressions.isEmpty {
      body.append(
        .el("p", [("class", "banner")], text: "\(regressions.count) regressions against the baseline (exit 3)."))
      body.append(.el("h2", text: "Regressions against the baseline"))
      body.append(
        table(
          ["scenario", "metric", "baseline", "now", "allowed", "compared"],
          regressions.map { r in
            [
              .text(r.scenario), .text(r.metric), .text(num(r.baseline)), .text(num(r.current)), .text(r.allowed),
              .text(r.rule ?? ""),
            ]
          }))
    }
    if let baseline = report.baseline {
      body.append(.el("ul", [("class", "meta")], baseline.notes.map { .el("li", text: $0) }))
    }
    body.append(.el("h2", text: "Scenarios"))
    body.append(
      table(
        ["verdict", "scenario", "checks", "time"],
        report.scenarios.map { r in
          [
            verdictCell(r.verdict), .el("a", [("href", "#\(anchor(r.name))")], text: r.name),
            .text("\(r.checks.filter { $0.verdict == .pass }.count)/\(r.checks.count)"),
            .text(String(format: "%.2f s", r.metrics.wallSeconds)),
          ]
        }))
    body.append(.el("h2", text: "Conformance by rule"))
    body.append(
      table(
        ["rule", "level", "grade", "text", "evidence"],
        report.rules.map { rule in
          [
            .el("span", [("id", "rule-\(rule.id)")], text: rule.id), .text(rule.level.rawValue),
            .el("span", [("class", "grade \(rule.grade.label)")], text: rule.grade.label),
            .text(rule.text),
            .el(
              "details", [],
              [.el("summary", text: "\(rule.evidence.count) checks")] + rule.evidence.map { .el("div", text: $0) }),
          ]
        }))
    for r in report.scenarios { body.append(scenario(r)) }
    let page = Markup.el(
      "html", [("lang", "en")],
      [
        .el(
          "head", [],
          [
            .el("meta", [("charset", "utf-8")]),
            .el("meta", [("name", "viewport"), ("content", "width=device-width, initial-scale=1")]),
            .el("title", text: title),
            .el("style", [], [.constant(css)]),
          ]),
        .el("body", [], body),
      ])
    return "<!DOCTYPE html>\n" + page.render()
  }

  static func scenario(_ r: ScenarioResult) -> Markup {
    var nodes: [Markup] = [
      .el("h3", [("id", anchor(r.name))], [verdictCell(r.verdict), .text(" " + r.name)]),
      .el(
        "p", [("class", "meta")],
        text: [r.file, "seed \(r.seed)", "\(r.timeMode) time", String(format: "%.3f s wall", r.metrics.wallSeconds)]
          .compactMap { $0 }.joined(separator: " · ")),
    ]
    if !r.description.isEmpty { nodes.append(.el("p", text: r.description)) }
    if let error = r.error { nodes.append(.el("p", [("class", "banner")], text: error)) }
    if let profile = r.heapProfile { nodes.append(.el("pre", text: profile)) }
    for finding in r.findings { nodes.append(.el("p", [("class", "finding")], text: "Finding: " + finding.text)) }
    nodes.append(
      table(
        ["verdict", "rule", "check", "expected", "observed"],
        r.checks.map { c in
          [
            verdictCell(c.verdict), .text("\(c.rule) (\(c.level.rawValue))"), .text(c.name), .text(c.expected),
            .group([.text(c.observed)] + (c.detail.map { [.el("div", [("class", "detail")], text: $0)] } ?? [])),
          ]
        }))
    nodes.append(metricsTable(r.metrics))
    var charts: [Markup] = []
    let m = r.metrics
    if !m.latencyCurve.isEmpty {
      charts.append(
        Chart.line(
          title: "Chunk latency by percentile", xLabel: "percentile", yLabel: "µs",
          series: [
            Chart.Series(
              name: "emit → onChunk", color: "#3366cc",
              points: m.latencyCurve.map { (1 / max(1e-9, 1 - $0.percentile / 100), $0.valueUs) })
          ], logX: true, xTicks: [(1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%")])
      )
    }
    let withLatency = r.samples.filter { $0.latencyP50Us != nil }
    if withLatency.count > 1 {
      charts.append(
        Chart.line(
          title: "Chunk latency over time", xLabel: "scenario time (ms)", yLabel: "µs",
          series: [
            Chart.Series(name: "p50", color: "#3366cc", points: withLatency.map { ($0.t, $0.latencyP50Us ?? 0) }),
            Chart.Series(name: "p99", color: "#dc3912", points: withLatency.map { ($0.t, $0.latencyP99Us ?? 0) }),
          ]))
    }
    if r.samples.count > 1 {
      charts.append(
        Chart.line(
          title: "activeStreams and emitters over time", xLabel: "scenario time (ms)", yLabel: "entries",
          series: [
            Chart.Series(
              name: "activeStreams", color: "#109618", points: r.samples.map { ($0.t, Double($0.activeStreams)) }),
            Chart.Series(name: "emitters", color: "#ff9900", points: r.samples.map { ($0.t, Double($0.emitters)) }),
          ]))
      let memory = r.samples.compactMap { s in s.allocated.map { (s.t, Double($0)) } }
      if memory.count > 1 {
        charts.append(
          Chart.line(
            title: "Memory above baseline over time", xLabel: "scenario time (ms)", yLabel: "bytes",
            series: [Chart.Series(name: "allocated (\(m.memorySource ?? "?"))", color: "#990099", points: memory)]))
      }
    }
    if !charts.isEmpty { nodes.append(.el("div", [("class", "charts")], charts)) }
    if !r.trace.isEmpty {
      nodes.append(.el("h4", text: "Message sequence of the first stream"))
      nodes.append(
        Chart.sequence(
          r.trace.map { e in
            var label = e.type
            if let seq = e.seq { label += " seq=\(seq)" }
            if let code = e.code { label += " \(code)" }
            return (e.t, e.type, e.from, e.to, label)
          }))
    }
    return .el("section", [("class", "scenario \(r.verdict.rawValue)")], nodes)
  }

  static func metricsTable(_ m: Metrics) -> Markup {
    var rows: [[Markup]] = [
      [.text("streams"), .text("\(m.streamsCompleted) completed of \(m.streamsOpened)")],
      [.text("chunks"), .text("\(m.chunksDelivered) delivered of \(m.chunksEmitted) emitted")],
      [.text("throughput"), .text(String(format: "%.0f chunks/s, %@/s", m.chunksPerSecond, bytes(m.bytesPerSecond)))],
    ]
    func latency(_ name: String, _ l: LatencySummary?) {
      guard let l else { return }
      rows.append([
        .text(name),
        .text(
          String(
            format: "p50 %.2f · p90 %.2f · p99 %.2f · p99.9 %.2f · max %.2f µs (n=%d)", l.p50, l.p90, l.p99, l.p999,
            l.max, l.count)),
      ])
    }
    latency("chunk latency (wall)", m.chunkLatency)
    latency("chunk latency from due time", m.chunkLatencyCorrected)
    latency("time to first chunk", m.timeToFirstChunk)
    latency("stream completion", m.streamCompletion)
    if let retained = m.retainedBytes {
      rows.append([.text("retained after all streams"), .text(bytes(Double(retained)))])
    }
    if let peak = m.peakBytes { rows.append([.text("peak above baseline"), .text(bytes(Double(peak)))]) }
    if let per = m.bytesPerOpenStream {
      rows.append([.text("bytes per open stream"), .text(String(format: "%.0f B", per))])
    }
    if let g = m.growthPerStream {
      rows.append([.text("memory growth per stream (fit)"), .text(String(format: "%.2f B", g))])
    }
    if let g = m.growthPerChunk {
      rows.append([.text("memory growth per chunk (fit)"), .text(String(format: "%.4f B", g))])
    }
    if !m.dropped.isEmpty {
      rows.append([
        .text("dropped by the buses"),
        .text(m.dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
      ])
    }
    if let depth = m.maxInboxDepth {
      rows.append([.text("slow consumer inbox, most waiting"), .text("\(depth) messages")])
    }
    if !m.faultsInjected.isEmpty {
      rows.append([
        .text("faults injected"),
        .text(m.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")),
      ])
    }
    rows.append([
      .text("messages"),
      .text(m.messages.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
    ])
    return table(["metric", "value"], rows)
  }

  static func table(_ headers: [String], _ rows: [[Markup]]) -> Markup {
    .el(
      "table", [],
      [.el("thead", [], [.el("tr", [], headers.map { .el("th", text: $0) })])]
        + [.el("tbody", [], rows.map { .el("tr", [], $0.map { .el("td", [], [$0]) }) })])
  }

  static func badge(_ label: String, _ value: String, _ verdict: Verdict?) -> Markup {
    .el(
      "div", [("class", "badge \(verdict?.rawValue ?? "")")],
      [.el("div", [("class", "value")], text: value), .el("div", [("class", "label")], text: label)])
  }

  static func verdictCell(_ v: Verdict) -> Markup {
    .el("span", [("class", "verdict \(v.rawValue)")], text: v.label)
  }

  static func anchor(_ name: String) -> String {
    "s-" + String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" })
  }

  static func iso(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }

  static func num(_ v: Double) -> String { String(format: "%.2f", v) }

  static func bytes(_ v: Double) -> String {
    let a = abs(v)
    if a >= 1_073_741_824 { return String(format: "%.2f GiB", v / 1_073_741_824) }
    if a >= 1_048_576 { return String(format: "%.2f MiB", v / 1_048_576) }
    if a >= 1_024 { return String(format: "%.1f KiB", v / 1_024) }
    return String(format: "%.0f B", v)
  }

  static let css: StaticString = """
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
    h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
    h3{font-size:16px;margin:24px 0 4px}.meta,.muted{color:#666;font-size:12px}
    table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
    th{background:#f6f6f6;font-weight:600}td{word-break:break-word}
    .summary{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0}
    .badge{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:80px;text-align:center}
    .badge .value{font-size:20px;font-weight:700}.badge .label{font-size:11px;color:#666;text-transform:uppercase}
    .badge.pass{border-color:#2e7d32}.badge.fail,.badge.error{border-color:#c62828;background:#fdecea}
    .verdict{font-weight:700;font-size:11px;padding:1px 6px;border-radius:3px;color:#fff;background:#777}
    .verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}.verdict.error{background:#6a1b9a}
    .verdict.non_strict{background:#ef6c00}.verdict.unsupported{background:#90a4ae}.verdict.untested{background:#b0a060}
    .grade{font-weight:700;font-size:11px;white-space:nowrap}td:nth-child(2){white-space:nowrap}.grade.OK{color:#2e7d32}.grade.FAILED{color:#c62828}
    .grade.NON-STRICT{color:#ef6c00}.grade.UNTESTED,.grade.UNSUPPORTED{color:#90a4ae}
    .finding{background:#fff4e5;border:1px solid #ef6c00;padding:8px;border-radius:4px}
    .banner{background:#fdecea;border:1px solid #c62828;padding:8px;border-radius:4px}
    .detail{color:#c62828;font-size:12px;margin-top:2px}pre{background:#f6f6f6;padding:8px;overflow:auto}
    .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
    svg.chart{width:100%;height:auto;border:1px solid #eee}svg .plot{fill:#fff;stroke:#ccc}
    svg .grid{stroke:#eee}svg .series{fill:none;stroke-width:1.6}svg text{font-size:10px;fill:#444}
    svg .end{text-anchor:end}svg .mid{text-anchor:middle}svg .axis{font-size:11px;fill:#222}svg .legend{font-size:11px}
    svg.sequence{width:100%;max-width:900px;height:auto;border:1px solid #eee}
    svg .lifeline{stroke:#bbb;stroke-dasharray:4 3}svg .lane{font-size:12px;font-weight:600;fill:#222}
    svg .msg{stroke:#3366cc;stroke-width:1.2}svg .head{fill:#3366cc}svg .msglabel{font-size:10px}
    svg .msg.stream_error,svg .msg.stream_cancel{stroke:#c62828}svg .head.stream_error,svg .head.stream_cancel{fill:#c62828}
    svg .msg.stream_end{stroke:#2e7d32}svg .head.stream_end{fill:#2e7d32}
    section.scenario{border-top:1px solid #eee;margin-top:16px}
    """
}
