import Foundation
import KenshoHarness
import KenshoProtocol
import KenshoVerdict

/// The HTML report: one self-contained page (inline CSS and SVG, no scripts, no network) that
/// a person reads from the top: the verdict and counts, the rules at a glance, what failed
/// and why; then the scenarios, failures and errors first and open, each failed check with
/// its counterexample and the wire log of its stream; passing scenarios folded away. Every
/// string that came from a run is escaped.
public enum HTMLReport {
  public static func render(_ report: RunReport) -> String {
    let s = report.summary
    let title = "kensho-bench — \(report.run.implementation)"
    var body: [Markup] = [
      .el(
        "header", [("class", "top")],
        [
          .el("h1", [], [verdictChip(s.verdict, big: true), .text(" " + title)]),
          .el(
            "p", [("class", "meta")],
            text:
              "\(iso(report.run.startedAt)) · \(report.run.machine.hostname) · \(report.run.machine.cores) cores · "
              + "kensho-bench \(report.run.toolVersion)" + (report.run.seed.map { " · seed \($0)" } ?? "")),
        ])
    ]
    if !report.complete {
      body.append(
        .el(
          "p", [("class", "banner")],
          text: "Incomplete run"
            + (report.interruptedBy.map { " (interrupted by \($0))" } ?? ": interrupted")
            + "; only the scenarios below were run."))
    }
    body.append(
      .el(
        "div", [("class", "summary")],
        [
          badge("scenarios", "\(s.scenarios)", nil),
          badge("passed", "\(s.passed)", s.passed > 0 ? .pass : nil),
          badge("failed", "\(s.failed)", s.failed > 0 ? .fail : nil),
          badge("errors", "\(s.errors)", s.errors > 0 ? .error : nil),
          badge("non-strict", "\(s.nonStrict)", s.nonStrict > 0 ? .nonStrict : nil),
          badge("untested", "\(s.untested)", nil),
          badge("unsupported", "\(s.unsupported)", nil),
        ]))
    body.append(rulesAtAGlance(report.rules))
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
    let ordered = orderedForReading(report.scenarios)
    let troubled = ordered.filter { expanded($0.verdict) }
    if !troubled.isEmpty {
      body.append(.el("h2", text: "What failed"))
      body.append(.el("ul", [("class", "failures")], troubled.map(failureLine)))
    }
    body.append(.el("h2", text: "Scenarios"))
    if ordered.contains(where: { !expanded($0.verdict) }) {
      body.append(
        .el(
          "p", [("class", "muted")],
          text: troubled.isEmpty
            ? "Every scenario passed; open one to see its checks, metrics and a sample of its messages."
            : "Failures and errors first, open; the others are folded (open one to see it)."))
    }
    for r in ordered { body.append(scenario(r)) }
    body.append(.el("h2", [("id", "rules")], text: "Conformance by rule"))
    body.append(
      .el(
        "details", [("class", "rules")],
        [
          .el(
            "summary", text: "All \(report.rules.count) rules of KSP/1, with their text and the checks that graded them"
          ),
          table(
            ["rule", "level", "grade", "text", "evidence"],
            report.rules.map { rule in
              [
                .el("span", [("id", "rule-\(rule.id)"), ("class", "nowrap")], text: rule.id),
                .text(rule.level.rawValue),
                .el("span", [("class", "grade \(rule.grade.rawValue)")], text: rule.grade.label),
                .text(rule.text),
                rule.evidence.isEmpty
                  ? .el("span", [("class", "muted")], text: "no scenario decides it")
                  : .el(
                    "details", [],
                    [.el("summary", text: "\(rule.evidence.count) checks")]
                      + rule.evidence.map { .el("div", text: $0) }),
              ]
            }, classes: "rules"),
        ]))
    let page = Markup.el(
      "html", [("lang", "en")],
      [
        .el(
          "head", [],
          [
            .el("meta", [("charset", "utf-8")]),
            .el("meta", [("name", "viewport"), ("content", "width=device-width, initial-scale=1")]),
            .el("title", text: "\(s.verdict.label) · " + title),
            .el("style", [], [.constant(css)]),
          ]),
        .el("body", [], body),
      ])
    return "<!DOCTYPE html>\n" + page.render()
  }

  /// Worst first (errors, failures, non-strict, ...), in run order within a verdict.
  static func orderedForReading(_ results: [ScenarioResult]) -> [ScenarioResult] {
    results.enumerated().sorted { a, b in
      a.element.verdict != b.element.verdict ? a.element.verdict > b.element.verdict : a.offset < b.offset
    }.map(\.element)
  }

  /// Whether a scenario with this verdict is shown open: failures, errors and warnings.
  static func expanded(_ v: Verdict) -> Bool { v >= .nonStrict }

  /// Every rule as a chip coloured by its grade, linking to the rules table.
  static func rulesAtAGlance(_ rules: [RunReport.RuleGrade]) -> Markup {
    .el(
      "div", [("class", "glance"), ("aria-label", "rules by grade")],
      [.el("span", [("class", "glance-label")], text: "Rules")]
        + rules.map { rule in
          .el(
            "a",
            [
              ("class", "rule \(rule.grade.rawValue)"), ("href", "#rule-\(rule.id)"),
              ("title", "\(rule.id) \(rule.grade.label) (\(rule.level.rawValue)): \(rule.text)"),
            ], text: rule.id.replacingOccurrences(of: "KSP-", with: ""))
        } + [
          .el(
            "span", [("class", "muted glance-key")],
            text:
              "\(rules.filter { $0.grade == .pass }.count) OK · \(rules.filter { $0.grade == .fail }.count) failed · "
              + "\(rules.filter { $0.grade == .nonStrict }.count) non-strict · "
              + "\(rules.filter { $0.grade == .untested }.count) untested")
        ])
  }

  /// "FAILED faults-forged-cancel — foreign_cancel_ignored (KSP-7.3): stream #0 ...".
  static func failureLine(_ r: ScenarioResult) -> Markup {
    let bad = r.checks.filter { $0.verdict >= .nonStrict }
    var nodes: [Markup] = [
      verdictChip(r.verdict), .text(" "), .el("a", [("href", "#\(anchor(r.name))")], text: r.name),
    ]
    if bad.isEmpty, let error = r.error {
      nodes.append(.el("span", [("class", "why")], text: " — " + error))
    }
    // The worst check says why, in a line; the others are named.
    if let c = bad.max(by: { $0.verdict < $1.verdict }) {
      nodes.append(
        .el(
          "span", [("class", "why")],
          [
            .text(" — "), .el("span", [("class", "check")], text: c.name), .text(" "),
            .el("span", [("class", "rule-id")], text: c.rule), .text(": " + oneLine(c.detail ?? c.observed)),
          ]
            + (bad.count > 1
              ? [
                .el(
                  "span", [("class", "muted")],
                  text: " · also " + bad.filter { $0.name != c.name }.map(\.name).joined(separator: ", "))
              ] : [])))
    }
    return .el("li", [], nodes)
  }

  static func oneLine(_ text: String, limit: Int = 220) -> String {
    let flat = text.replacingOccurrences(of: "\n", with: " ")
    return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
  }

  static func scenario(_ r: ScenarioResult) -> Markup {
    let open = expanded(r.verdict)
    let passing = r.checks.filter { $0.verdict == .pass }.count
    var head: [Markup] = [
      verdictChip(r.verdict), .text(" "), .el("span", [("class", "name")], text: r.name),
      .el(
        "span", [("class", "muted")],
        text: " · \(passing)/\(r.checks.count) checks OK · \(Units.duration(us: r.metrics.wallSeconds * 1e6)) wall"),
    ]
    let notable = r.checks.filter { $0.verdict != .pass }.map(\.verdict)
    if !open, let worst = notable.max() {
      head.append(.el("span", [("class", "muted")], text: " · \(notable.count) \(worst.label.lowercased())"))
    }
    var nodes: [Markup] = [
      .el(
        "p", [("class", "meta")],
        text: [
          r.file, "seed \(r.seed)", "\(r.timeMode) time", "\(Units.duration(ms: r.metrics.scenarioMs)) scenario time",
        ]
        .compactMap { $0 }.joined(separator: " · "))
    ]
    if !r.description.isEmpty { nodes.append(.el("p", [("class", "description")], text: r.description)) }
    if let error = r.error { nodes.append(.el("p", [("class", "banner")], text: error)) }
    if let profile = r.heapProfile { nodes.append(.el("pre", text: profile)) }
    for finding in r.findings { nodes.append(.el("p", [("class", "finding")], text: "Finding: " + finding.text)) }
    // Each failed check, its counterexample, and the wire log of its stream (once per stream).
    var shown = Set<Int>()
    for c in r.checks.sorted(by: { $0.verdict > $1.verdict }) where c.verdict >= .nonStrict {
      var card: [Markup] = [
        .el(
          "h4", [],
          [
            verdictChip(c.verdict), .text(" "), .el("span", [("class", "check")], text: c.name), .text(" "),
            .el("span", [("class", "rule-id")], text: ruleAndLevel(c)),
          ]),
        .el(
          "p", [],
          [
            .el("span", [("class", "muted")], text: "expected "), .text(c.expected),
            .el("span", [("class", "muted")], text: " · observed "), .text(c.observed),
          ]),
      ]
      if let x = c.counterexample {
        card.append(.el("p", [("class", "counterexample")], [.el("b", text: "Counterexample: "), .text(x.text)]))
      } else if let detail = c.detail {
        card.append(.el("p", [("class", "detail")], text: detail))
      }
      for (i, log) in r.wireLog.streams.enumerated() where involves(log, c) {
        if shown.insert(i).inserted {
          card.append(wireLog(log, checks: r.checks))
        } else {
          card.append(.el("p", [("class", "muted")], text: "Its wire log is shown above (\(log.label))."))
        }
      }
      nodes.append(.el("div", [("class", "failure \(c.verdict.rawValue)")], card))
    }
    for (i, log) in r.wireLog.streams.enumerated() where !shown.contains(i) {
      let wire = wireLog(log, checks: r.checks)
      nodes.append(
        log.reason == .sample
          ? .el("details", [("class", "sample")], [.el("summary", text: "Wire log: a sample (\(log.label))"), wire])
          : wire)
    }
    let checks = table(
      ["verdict", "rule", "check", "expected", "observed"],
      r.checks.map { c in
        [
          verdictChip(c.verdict), .el("span", [("class", "nowrap")], text: ruleAndLevel(c)),
          .el("span", [("class", "check")], text: c.name), .text(c.expected),
          .group([.text(c.observed)] + (c.detail.map { [.el("div", [("class", "detail")], text: $0)] } ?? [])),
        ]
      }, classes: "checks")
    let measured = [metricsTable(r.metrics)] + charts(r)
    if open {
      nodes.append(.el("details", [], [.el("summary", text: "All \(r.checks.count) checks"), checks]))
      nodes.append(.el("details", [], [.el("summary", text: "Metrics and charts")] + measured))
    } else {
      nodes.append(checks)
      nodes.append(contentsOf: measured)
    }
    return .el(
      "details", [("class", "scenario \(r.verdict.rawValue)"), ("id", anchor(r.name))] + (open ? [("open", "")] : []),
      [.el("summary", [], head), .el("div", [("class", "body")], nodes)])
  }

  /// "KSP-7.3 MUST"; "HARNESS" once.
  static func ruleAndLevel(_ c: CheckResult) -> String {
    c.rule == c.level.rawValue ? c.rule : "\(c.rule) \(c.level.rawValue)"
  }

  /// Whether a stream of the wire log is the one a check's counterexample points at.
  static func involves(_ log: WireLog.Stream, _ c: CheckResult) -> Bool {
    guard let x = c.counterexample, log.reason == .counterexample else { return false }
    if log.rows.contains(where: { $0.offending.contains(c.name) }) { return true }
    return x.stream != nil && x.stream == log.index && x.message == nil
  }

  static func charts(_ r: ScenarioResult) -> [Markup] {
    var charts: [Markup] = []
    let m = r.metrics
    if !m.latencyCurve.isEmpty {
      let count = max(m.chunkLatency?.count ?? 10, 10)
      let decades = min(6, Int(log10(Double(count)).rounded(.up)))
      charts.append(
        Chart.line(
          title: "Chunk latency by percentile (emit → onChunk, wall clock)", x: .percentile(decades: decades),
          y: .durationUs, yLabel: "latency",
          series: [
            Chart.Series(
              name: "emit → onChunk", color: "#3366cc", points: m.latencyCurve.map { ($0.percentile, $0.valueUs) })
          ]))
    }
    let withLatency = r.samples.filter { $0.latencyP50Us != nil }
    if withLatency.count > 1 {
      charts.append(
        Chart.line(
          title: "Chunk latency over time", x: .linear(.durationUs, label: "scenario time"), y: .durationUs,
          yLabel: "latency",
          series: [
            Chart.Series(
              name: "p50", color: "#3366cc", points: withLatency.map { ($0.t * 1e3, $0.latencyP50Us ?? 0) }),
            Chart.Series(
              name: "p99", color: "#dc3912", points: withLatency.map { ($0.t * 1e3, $0.latencyP99Us ?? 0) }),
          ]))
    }
    if r.samples.count > 1 {
      charts.append(
        Chart.line(
          title: "activeStreams and emitters over time", x: .linear(.durationUs, label: "scenario time"), y: .count,
          yLabel: "entries",
          series: [
            Chart.Series(
              name: "activeStreams", color: "#109618",
              points: r.samples.map { ($0.t * 1e3, Double($0.activeStreams)) }),
            Chart.Series(
              name: "emitters", color: "#ff9900", points: r.samples.map { ($0.t * 1e3, Double($0.emitters)) }),
          ]))
      let memory = r.samples.compactMap { s in s.allocated.map { (s.t * 1e3, Double($0)) } }
      if memory.count > 1 {
        charts.append(
          Chart.line(
            title: "Memory above baseline over time", x: .linear(.durationUs, label: "scenario time"), y: .bytes,
            yLabel: "allocated",
            series: [Chart.Series(name: "allocated (\(m.memorySource ?? "?"))", color: "#990099", points: memory)]))
      }
    }
    return charts.isEmpty ? [] : [.el("div", [("class", "charts")], charts)]
  }

  // MARK: - The wire log

  /// A stream's messages as a ladder between its consumer (left) and producer (right): one
  /// row per message with what the network did with it, the offending message highlighted,
  /// long runs of alike messages folded.
  static func wireLog(_ log: WireLog.Stream, checks: [CheckResult]) -> Markup {
    let consumer = log.consumer ?? "consumer"
    let producer = log.producer ?? "producer"
    // One unit for the column, chosen by the messages (a late "no terminal callback" would
    // otherwise turn every time into 0.00x s).
    let useSeconds = (log.rows.filter { !$0.isEvent }.map(\.t).max() ?? 0) >= 10_000
    func time(_ ms: Double) -> String {
      useSeconds ? String(format: "%.3f s", ms / 1e3) : String(format: "%.3f ms", ms)
    }
    // Counterexamples that name a time but no message are drawn as a marker row at that time.
    var markers: [(t: Double, check: CheckResult)] = []
    for c in checks where c.verdict >= .nonStrict {
      guard let x = c.counterexample, x.message == nil, x.stream == log.index, log.index != nil, let at = x.atMs
      else { continue }
      markers.append((at, c))
    }
    markers.sort { $0.t < $1.t }
    // Each marker goes before the first row later than it; folding never hides it.
    let markerAt = markers.map { m in log.rows.firstIndex { $0.t > m.t } ?? log.rows.count }
    var body: [Markup] = []
    func marker(_ m: (t: Double, check: CheckResult)) {
      body.append(
        .el(
          "tr", [("class", "marker")],
          [
            .el("td", [("class", "t")], text: time(m.t)), .el("td", text: ""),
            .el(
              "td", [("colspan", "4")],
              [
                .el("span", [("class", "flag")], text: "▲ counterexample"), .text(" "),
                .el("span", [("class", "check")], text: m.check.name),
                .text(": " + (m.check.counterexample?.text ?? "")),
              ]),
          ]))
    }
    func gap(_ n: Int, _ what: String) {
      body.append(
        .el(
          "tr", [("class", "gap")],
          [.el("td", [("colspan", "6")], text: "⋯ \(Units.count(n)) \(what)")]))
    }
    var nextMarker = 0
    let runs = fold(log.rows, breaks: Set(markerAt))
    for run in runs {
      let first = log.rows[run.lowerBound]
      while nextMarker < markers.count, markerAt[nextMarker] <= run.lowerBound {
        marker(markers[nextMarker])
        nextMarker += 1
      }
      if first.skippedBefore > 0 {
        gap(first.skippedBefore, "messages of this stream not kept in the report")
      }
      if run.count < foldAt {
        for i in run { body.append(row(log.rows[i], consumer: consumer, time: time)) }
      } else {
        let last = log.rows[run.upperBound - 1]
        body.append(row(log.rows[run.lowerBound], consumer: consumer, time: time))
        body.append(row(log.rows[run.lowerBound + 1], consumer: consumer, time: time))
        let hidden = log.rows[(run.lowerBound + 2)..<(run.upperBound - 1)]
        var what = "more alike: \(first.type)"
        if let a = hidden.first?.seq, let b = hidden.last?.seq { what += " seq \(a)–\(b)" }
        if let a = hidden.first?.t, let b = hidden.last?.t { what += ", \(time(a)) – \(time(b))" }
        gap(hidden.count, what)
        body.append(row(last, consumer: consumer, time: time))
      }
    }
    while nextMarker < markers.count {
      marker(markers[nextMarker])
      nextMarker += 1
    }
    if log.skippedAfter > 0 { gap(log.skippedAfter, "later messages of this stream not kept in the report") }
    let caption: String =
      switch log.reason {
      case .counterexample: "Wire log of \(log.label)"
      case .unfinished: "Wire log of \(log.label), which never ended"
      case .sample: "Wire log of \(log.label)"
      }
    let kept = log.rows.filter { !$0.isEvent }.count
    return .el(
      "div", [("class", "wirelog")],
      [
        .el(
          "p", [("class", "wirelog-title")],
          [
            .el("b", text: caption),
            .el(
              "span", [("class", "muted")],
              text: kept == log.messages
                ? " · \(Units.count(log.messages)) messages"
                : " · \(Units.count(kept)) of \(Units.count(log.messages)) messages kept"),
          ]),
        legend,
        .el(
          "div", [("class", "scroll")],
          [
            .el(
              "table", [("class", "wire")],
              [
                .el(
                  "thead", [],
                  [
                    .el(
                      "tr", [],
                      [
                        .el("th", text: "time"), .el("th", text: "#"),
                        .el(
                          "th", [("class", "ladder")],
                          [
                            .el("span", [("class", "lane-l")], text: consumer),
                            .el("span", [("class", "lane-r")], text: producer),
                          ]),
                        .el("th", text: "message"), .el("th", text: "network"), .el("th", text: "delivered"),
                      ])
                  ]),
                .el("tbody", [], body),
              ])
          ]),
      ])
  }

  static let legend: Markup = .el(
    "p", [("class", "legend")],
    [
      .el("span", [("class", "fate")], text: "delivered"),
      .el("span", [("class", "fate lost")], text: "lost"),
      .el("span", [("class", "fate cut_off")], text: "cut off (partition)"),
      .el("span", [("class", "fate duplicated")], text: "duplicated"),
      .el("span", [("class", "fate delayed")], text: "delayed"),
      .el("span", [("class", "fate queued")], text: "queued"),
      .el("span", [("class", "fate forged")], text: "forged by the harness"),
      .el("span", [("class", "fate invalid")], text: "breaks KSP-1.1"),
      .el("span", [("class", "flag")], text: "▲ counterexample"),
    ])

  /// Runs of rows that read alike: the same message type, ends and fate, consecutive seq,
  /// nothing notable, nothing left out between them.
  static func fold(_ rows: [WireLog.Row], breaks: Set<Int> = []) -> [Range<Int>] {
    var runs: [Range<Int>] = []
    var start = 0
    func alike(_ a: WireLog.Row, _ b: WireLog.Row) -> Bool {
      guard !a.isEvent, !b.isEvent, a.offending.isEmpty, b.offending.isEmpty, b.skippedBefore == 0,
        a.forged == nil, b.forged == nil, a.problem == nil, b.problem == nil
      else { return false }
      let seqFollows = (a.seq == nil && b.seq == nil) || (a.seq.map { $0 + 1 } == b.seq)
      return seqFollows && a.type == b.type && a.from == b.from && a.to == b.to && a.fates == b.fates
        && a.deliveries == b.deliveries && a.deliveredTo == b.deliveredTo && a.error == b.error
        && a.creditFrame == b.creditFrame
    }
    for i in rows.indices.dropFirst() where breaks.contains(i) || !alike(rows[i - 1], rows[i]) {
      runs.append(start..<i)
      start = i
    }
    if !rows.isEmpty { runs.append(start..<rows.count) }
    return runs
  }

  /// Runs of this many alike rows or more are folded to their first two and last rows.
  static let foldAt = 6

  static func row(_ r: WireLog.Row, consumer: String, time: (Double) -> String) -> Markup {
    var classes = ["row"]
    if r.isEvent { classes.append("event") }
    if r.forged != nil { classes.append("forged") }
    if r.problem != nil { classes.append("invalid") }
    classes += r.fates.map(\.rawValue)
    if !r.isEvent && r.deliveries == 0 && r.fates.isEmpty { classes.append("undelivered") }
    if !r.offending.isEmpty { classes.append("offending") }
    // The ladder: an arrow towards the consumer (left) or away from it (right); an event is a
    // dot on its worker's side.
    let towardsConsumer = r.to == consumer
    var arrowClasses = ["arrow", towardsConsumer ? "l" : "r"] + r.fates.map(\.rawValue)
    if r.forged != nil { arrowClasses.append("forged") }
    if !r.isEvent && r.deliveries == 0 && r.fates.isEmpty { arrowClasses.append("undelivered") }
    let ladder: Markup =
      r.isEvent
      ? .el("span", [("class", "dot " + (r.from == consumer ? "l" : "r"))], text: "●")
      : .el("span", [("class", arrowClasses.joined(separator: " "))], [])
    var message: [Markup] = [.el("span", [("class", "type")], text: r.type)]
    if let seq = r.seq { message.append(.text(" seq \(seq)")) }
    if r.creditFrame { message.append(.text(" (credit)")) }
    if let e = r.error { message.append(.el("span", [("class", "code")], text: " " + e)) }
    if let note = r.note { message.append(.el("span", [("class", "muted")], text: " " + note)) }
    if !r.isEvent {
      let ends =
        r.to == consumer ? "\(r.from) → \(r.to)" : r.from == consumer ? "→ \(r.to)" : "\(r.from) → \(r.to)"
      if r.from != consumer || r.to != consumer {
        message.append(.el("span", [("class", "ends")], text: " " + ends))
      }
    }
    if let kind = r.forged {
      message += [.text(" "), .el("span", [("class", "fate forged")], text: "forged: \(kind)")]
    }
    if let problem = r.problem { message.append(.el("div", [("class", "detail")], text: "breaks KSP-1.1: " + problem)) }
    if !r.offending.isEmpty {
      message.append(
        .el("div", [("class", "flag")], text: "▲ counterexample of " + r.offending.joined(separator: ", ")))
    }
    if let exhibit = r.exhibit, r.forged != nil || r.problem != nil || !r.offending.isEmpty {
      message.append(.el("code", [("class", "exhibit")], text: exhibit))
    }
    var network: [Markup] = r.fates.map { fate in
      switch fate {
      case .lost: .el("span", [("class", "fate lost")], text: "lost")
      case .cutOff: .el("span", [("class", "fate cut_off")], text: "cut off (partition)")
      case .duplicated: .el("span", [("class", "fate duplicated")], text: "duplicated")
      case .delayed:
        .el(
          "span", [("class", "fate delayed")], text: "delayed" + (r.delayMs.map { " " + Units.duration(ms: $0) } ?? ""))
      case .queued: .el("span", [("class", "fate queued")], text: "queued")
      }
    }
    if network.isEmpty && !r.isEvent { network = [.el("span", [("class", "muted")], text: "passed")] }
    var delivered: [Markup] = []
    if !r.isEvent {
      if r.deliveries == 0 {
        delivered.append(
          .el(
            "span", [("class", r.fates.isEmpty ? "fate undelivered" : "muted")],
            text: r.fates.isEmpty ? "never delivered" : "no"))
      } else {
        delivered.append(.text(r.deliveries == 1 ? "yes" : "\(r.deliveries) times"))
        if !r.deliveredTo.isEmpty { delivered.append(.text(" to " + r.deliveredTo.joined(separator: ", "))) }
      }
    }
    var attributes: [(String, String)] = [("class", classes.joined(separator: " "))]
    if let exhibit = r.exhibit { attributes.append(("title", exhibit)) }
    return .el(
      "tr", attributes,
      [
        .el("td", [("class", "t")], text: time(r.t)),
        .el("td", [("class", "muted")], text: r.message.map { "#\($0)" } ?? ""),
        .el("td", [("class", "ladder")], [ladder]),
        .el("td", [("class", "msg")], message),
        .el("td", [], network),
        .el("td", [], delivered),
      ])
  }

  // MARK: - Metrics

  static func metricsTable(_ m: Metrics) -> Markup {
    var rows: [[Markup]] = [
      [.text("streams"), .text("\(Units.count(m.streamsCompleted)) completed of \(Units.count(m.streamsOpened))")],
      [
        .text("chunks"),
        .text("\(Units.count(m.chunksDelivered)) delivered of \(Units.count(m.chunksEmitted)) emitted"),
      ],
      [
        .text("throughput"),
        .text("\(Units.rate(m.chunksPerSecond, "chunks")), \(Units.bytes(m.bytesPerSecond))/s"),
      ],
    ]
    func latency(_ name: String, _ l: LatencySummary?) {
      guard let l else { return }
      let d = { (us: Double) in Units.duration(us: us) }
      rows.append([
        .text(name),
        .text(
          "p50 \(d(l.p50)) · p90 \(d(l.p90)) · p99 \(d(l.p99)) · p99.9 \(d(l.p999)) · max \(d(l.max)) "
            + "(n = \(Units.count(l.count)))"),
      ])
    }
    latency("chunk latency (wall)", m.chunkLatency)
    latency("chunk latency from due time", m.chunkLatencyCorrected)
    latency("time to first chunk", m.timeToFirstChunk)
    latency("stream completion", m.streamCompletion)
    if let retained = m.retainedBytes {
      rows.append([.text("retained after all streams"), .text(Units.bytes(Double(retained)))])
    }
    if let peak = m.peakBytes { rows.append([.text("peak above baseline"), .text(Units.bytes(Double(peak)))]) }
    if let per = m.bytesPerOpenStream {
      rows.append([.text("bytes per open stream"), .text(Units.bytes(per))])
    }
    for (unit, fit, digits) in [("stream", m.growthPerStreamFit, 2), ("chunk", m.growthPerChunkFit, 4)] {
      guard let fit else { continue }
      let text = String(
        format: "%.\(digits)f ± %.\(digits)f B, over %@s %.0f to %.0f (%d readings)", fit.slope, fit.margin, unit,
        fit.fromWork, fit.toWork, fit.points)
      rows.append([.text("memory growth per \(unit) (fit, later half)"), .text(text)])
    }
    if !m.dropped.isEmpty {
      rows.append([
        .text("dropped by the buses"),
        .text(m.dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")),
      ])
    }
    if let depth = m.maxInboxDepth {
      rows.append([.text("slow consumer inbox, most waiting"), .text("\(Units.count(depth)) messages")])
    }
    if !m.faultsInjected.isEmpty {
      rows.append([
        .text("faults injected"),
        .text(m.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")),
      ])
    }
    rows.append([
      .text("messages"),
      .text(m.messages.sorted { $0.key < $1.key }.map { "\($0.key) \(Units.count($0.value))" }.joined(separator: ", ")),
    ])
    return table(["metric", "value"], rows, classes: "metrics")
  }

  // MARK: - Pieces

  static func table(_ headers: [String], _ rows: [[Markup]], classes: String = "") -> Markup {
    .el(
      "div", [("class", "scroll")],
      [
        .el(
          "table", classes.isEmpty ? [] : [("class", classes)],
          [.el("thead", [], [.el("tr", [], headers.map { .el("th", text: $0) })])]
            + [.el("tbody", [], rows.map { .el("tr", [], $0.map { .el("td", [], [$0]) }) })])
      ])
  }

  static func badge(_ label: String, _ value: String, _ verdict: Verdict?) -> Markup {
    .el(
      "div", [("class", "badge \(verdict?.rawValue ?? "")")],
      [.el("div", [("class", "value")], text: value), .el("div", [("class", "label")], text: label)])
  }

  static func verdictChip(_ v: Verdict, big: Bool = false) -> Markup {
    .el("span", [("class", "verdict \(v.rawValue)" + (big ? " big" : ""))], text: v.label)
  }

  static func anchor(_ name: String) -> String {
    "s-" + String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" })
  }

  static func iso(_ d: Date) -> String { ISO8601DateFormatter().string(from: d) }

  static func num(_ v: Double) -> String { String(format: "%.2f", v) }

  static let css: StaticString = """
    *{box-sizing:border-box}
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px auto;max-width:1240px;color:#222;padding:0 16px}
    h1{font-size:20px;margin:0 0 2px;display:flex;align-items:center;gap:8px;flex-wrap:wrap}
    h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ddd}h4{font-size:14px;margin:4px 0}
    .meta,.muted{color:#666;font-size:12px}p{margin:4px 0}
    .scroll{overflow-x:auto;max-width:100%}
    table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
    th{background:#f6f6f6;font-weight:600}td{overflow-wrap:break-word}
    .nowrap,.check,.rule-id,.name,.verdict,.grade,.t,.fate,.flag{white-space:nowrap}
    .check{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}.rule-id{color:#555;font-size:12px}
    .summary{display:flex;gap:8px;flex-wrap:wrap;margin:10px 0}
    .badge{border:1px solid #ddd;border-radius:6px;padding:4px 12px;min-width:72px;text-align:center;white-space:nowrap}
    .badge .value{font-size:18px;font-weight:700}.badge .label{font-size:10.5px;color:#666;text-transform:uppercase}
    .badge.pass{border-color:#2e7d32}.badge.fail,.badge.error{border-color:#c62828;background:#fdecea}.badge.non_strict{border-color:#ef6c00}
    .verdict{display:inline-block;font-weight:700;font-size:11px;padding:1px 6px;border-radius:3px;color:#fff;background:#777;vertical-align:1px}
    .verdict.big{font-size:15px;padding:2px 10px}
    .verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}.verdict.error{background:#6a1b9a}
    .verdict.non_strict{background:#ef6c00}.verdict.unsupported{background:#90a4ae}.verdict.untested{background:#a39350}
    .grade{font-weight:700;font-size:11px}.grade.pass{color:#2e7d32}.grade.fail{color:#c62828}.grade.error{color:#6a1b9a}
    .grade.non_strict{color:#ef6c00}.grade.untested,.grade.unsupported{color:#90a4ae}
    .glance{display:flex;flex-wrap:wrap;gap:3px;align-items:center;margin:6px 0}
    .glance-label{font-weight:600;font-size:12px;margin-right:4px}.glance-key{margin-left:6px}
    a.rule{font-size:11px;padding:0 4px;border-radius:3px;text-decoration:none;color:#fff;background:#b8b8b8;white-space:nowrap}
    a.rule.pass{background:#2e7d32}a.rule.fail{background:#c62828}a.rule.non_strict{background:#ef6c00}a.rule.error{background:#6a1b9a}
    ul.failures{margin:4px 0;padding-left:18px}ul.failures li{margin:4px 0}.why{font-size:12.5px;margin-left:4px}
    details.scenario{border:1px solid #e3e3e3;border-radius:5px;margin:6px 0}
    details.scenario>summary{padding:5px 10px;cursor:pointer;list-style-position:inside}
    details.scenario[open]>summary{border-bottom:1px solid #eee;background:#fafafa}
    details.scenario.fail,details.scenario.error{border-color:#e0a0a0}
    details.scenario>.body{padding:6px 12px 10px}.name{font-weight:600}
    details>summary{cursor:pointer}details details>summary{margin:6px 0;color:#335}
    .failure{border-left:4px solid #c62828;padding:4px 10px;margin:8px 0;background:#fffafa}
    .failure.error{border-color:#6a1b9a}.failure.non_strict{border-color:#ef6c00;background:#fffaf3}.failure.untested{border-color:#a39350;background:#fff}
    .counterexample{font-size:13px}.detail{color:#c62828;font-size:12px;margin-top:2px}
    .finding{background:#fff4e5;border:1px solid #ef6c00;padding:6px;border-radius:4px}
    .banner{background:#fdecea;border:1px solid #c62828;padding:6px;border-radius:4px}
    pre{background:#f6f6f6;padding:8px;overflow:auto}
    .wirelog{margin:8px 0}.wirelog-title{margin:6px 0 2px}
    p.legend{font-size:11px;display:flex;flex-wrap:wrap;gap:4px;margin:2px 0 4px}
    table.wire{font-size:12px;width:auto;min-width:100%}table.wire td,table.wire th{padding:1px 6px;border-color:#eee}
    table.wire td.t{text-align:right;font-variant-numeric:tabular-nums;color:#444}
    table.wire td.msg{min-width:220px;max-width:520px}
    th.ladder,td.ladder{width:150px;min-width:150px;position:relative}th.ladder{font-size:11px}
    .lane-l{float:left}.lane-r{float:right}
    td.ladder::before,td.ladder::after{content:"";position:absolute;top:0;bottom:0;border-left:1px dashed #bbb}
    td.ladder::before{left:10px}td.ladder::after{right:10px}
    .arrow{position:absolute;left:14px;right:14px;top:50%;border-top:2px solid #3366cc;color:#3366cc}
    .arrow.r::after{content:"";position:absolute;right:-2px;top:-6px;border:5px solid transparent;border-left:8px solid currentColor;border-right:0}
    .arrow.l::after{content:"";position:absolute;left:-2px;top:-6px;border:5px solid transparent;border-right:8px solid currentColor;border-left:0}
    .arrow.lost,.arrow.cut_off,.arrow.undelivered{border-top-style:dashed;color:#c62828;border-color:#c62828}
    .arrow.lost.r,.arrow.cut_off.r,.arrow.undelivered.r{right:50%}.arrow.lost.l,.arrow.cut_off.l,.arrow.undelivered.l{left:50%}
    .arrow.lost::after,.arrow.cut_off::after,.arrow.undelivered::after{content:"✕";border:0;top:-10px;font-size:12px;font-weight:700}
    .arrow.cut_off{color:#6d4c41;border-color:#6d4c41}.arrow.cut_off::after{content:"⊘"}
    .arrow.duplicated{border-top:4px double #3366cc}.arrow.delayed{border-top-style:dotted;border-color:#ef6c00;color:#ef6c00}
    .arrow.forged{border-color:#c62828;color:#c62828;border-top-style:dashed}
    .dot{position:absolute;top:50%;margin-top:-9px;font-size:11px;color:#555}.dot.l{left:6px}.dot.r{right:6px}
    .fate{display:inline-block;font-size:11px;border-radius:3px;padding:0 5px;margin:0 2px;border:1px solid #3366cc;color:#3366cc}
    .fate.lost,.fate.undelivered{border-color:#c62828;color:#fff;background:#c62828}.fate.cut_off{border-color:#6d4c41;color:#fff;background:#6d4c41}
    .fate.duplicated{border-color:#1565c0;background:#e3f2fd}.fate.delayed{border-color:#ef6c00;color:#a84300;background:#fff3e0}
    .fate.queued{border-color:#777;color:#555}.fate.forged{border-color:#c62828;color:#c62828;border-style:dashed}
    .fate.invalid{border-color:#6a1b9a;color:#6a1b9a}
    tr.event td{color:#555;background:#fbfbfb}tr.lost td,tr.cut_off td,tr.undelivered td{background:#fff5f5}
    tr.forged td{background:#fff0f0}tr.duplicated td{background:#f3f8ff}tr.delayed td{background:#fffaf2}
    tr.offending td{background:#ffe3e0;border-top:2px solid #c62828;border-bottom:2px solid #c62828}
    tr.offending td:first-child{border-left:4px solid #c62828}
    tr.gap td{text-align:center;color:#777;font-style:italic;background:repeating-linear-gradient(135deg,#fafafa 0 6px,#f2f2f2 6px 12px)}
    tr.marker td{background:#ffe3e0;font-size:12px}
    .flag{color:#c62828;font-weight:700;font-size:11.5px}.type{font-family:ui-monospace,Menlo,Consolas,monospace}
    .ends{color:#666}.code{color:#6a1b9a;font-weight:600}
    code.exhibit{display:block;font-size:11px;color:#444;background:#f6f6f6;padding:2px 4px;margin-top:2px;overflow-wrap:anywhere}
    .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:12px}
    figure.chart{margin:0}figcaption{font-size:12px;font-weight:600;margin:4px 0}
    svg.chart{width:100%;height:auto;border:1px solid #eee}svg .plot{fill:#fff;stroke:#ccc}
    svg .grid{stroke:#eee}svg .series{fill:none;stroke-width:1.6}svg text{font-size:10px;fill:#444}
    svg .end{text-anchor:end}svg .mid{text-anchor:middle}svg .start{text-anchor:start}svg .axis{font-size:11px;fill:#222}svg .legend{font-size:11px}
    @media (max-width:700px){body{padding:0 8px;margin:8px auto}.badge{min-width:0;padding:3px 8px}.badge .value{font-size:15px}
    th.ladder,td.ladder{width:90px;min-width:90px}table.wire td.msg{min-width:160px}
    table.wire td:nth-child(2),table.wire th:nth-child(2){display:none}table.wire td,table.wire th{padding:1px 3px}}
    """
}
