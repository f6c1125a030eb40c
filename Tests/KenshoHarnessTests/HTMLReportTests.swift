import Foundation
@_spi(Testing) import KenshoHarness
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Testing

@testable import KenshoReport

/// The HTML report as a reader meets it: what failed first and open, passes folded, and for
/// each counterexample the wire log of its stream with every fault drawn.
@Suite("HTML report")
struct HTMLReportTests {
  func run(_ file: String, defects: Set<ReferenceDefect> = [], adapter: String? = nil) throws -> ScenarioResult {
    var options = RunOptions()
    options.referenceDefects = defects
    options.adapterCommand = adapter
    return ScenarioRunner(wallDeadline: .seconds(60), options: options).run(
      try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(file)").path))
  }

  func report(_ results: [ScenarioResult]) -> RunReport {
    RunReport(
      results: results,
      metadata: RunReport.Metadata(
        implementation: "test", seed: nil, startedAt: Date(timeIntervalSince1970: 0),
        finishedAt: Date(timeIntervalSince1970: 1), arguments: [], jemalloc: nil),
      complete: true)
  }

  /// The opening tag of each scenario's `<details>`, in page order.
  func scenarioTags(_ html: String) -> [Substring] {
    html.ranges(of: "<details class=\"scenario ").map { r in
      html[r.lowerBound..<(html[r.lowerBound...].firstIndex(of: ">") ?? html.endIndex)]
    }
  }

  /// The wire log rows (`<tr class="row ...">`) of the page, by their classes.
  func rowClasses(_ html: String) -> [Set<Substring>] {
    html.ranges(of: "<tr class=\"row").map { r in
      let rest = html[r.lowerBound...].dropFirst("<tr class=\"".count)
      return Set(rest.prefix { $0 != "\"" }.split(separator: " "))
    }
  }

  @Test("a failing run: failures first and open, passes folded, wire logs with faults and the offending message")
  func failingRunStructure() throws {
    let passing = try run("faults-dropped-end.json")
    let duplicated = try run("faults-duplicates.json", defects: [.unnumberedChunks])
    let partition = try run("faults-partition-heals.json", defects: [.unnumberedChunks])
    #expect(passing.verdict == .pass)
    #expect(duplicated.verdict == .nonStrict)
    // Run order puts the passing scenario first; the report must not.
    let html = HTMLReport.render(report([passing, duplicated, partition]))
    let tags = scenarioTags(html)
    #expect(tags.count == 3)
    #expect(tags.first?.contains("scenario \(partition.verdict.rawValue)") == true, "the worst first")
    #expect(tags.last?.contains("scenario pass") == true, "passes last")
    for tag in tags {
      #expect(tag.contains("open=\"\"") == !tag.contains("scenario pass"), "\(tag)")
    }
    // What failed is listed before any scenario, with the failing check's name.
    let list = try #require(html.range(of: "<ul class=\"failures\">"))
    let firstScenario = try #require(html.range(of: "<details class=\"scenario "))
    #expect(list.lowerBound < firstScenario.lowerBound)
    #expect(html[list.lowerBound..<firstScenario.lowerBound].contains("seq_delivery"))
    // The wire logs draw what the network did: a duplicated stream_request, chunks cut off by
    // the partition, the counterexample marked; long alike runs folded.
    let rows = rowClasses(html)
    #expect(rows.contains { $0.contains("duplicated") })
    #expect(rows.contains { $0.contains("cut_off") }, "the partition's drops are cut off, not normal arrows")
    #expect(html.contains("stream_request</span>"))
    #expect(html.contains("class=\"marker\""), "a counterexample without a message is marked at its time")
    #expect(html.contains("more alike: stream_chunk"), "long runs of alike rows are folded")
    #expect(!html.contains("<script"), "no script")
    #expect(!html.contains(".00 µs"), "no µs figures with two decimals")
  }

  @Test("a forged cancel that broke KSP-7.3 is in the wire log, highlighted, with its JSON")
  func forgedCounterexampleHighlighted() throws {
    let r = try run("faults-forged-cancel.json", adapter: nodeAdapter + " --defect cancel-from-anyone")
    let check = try #require(r.checks.first { $0.name == "foreign_cancel_ignored" })
    #expect(check.verdict == .fail)
    let message = try #require(check.counterexample?.message)
    let stream = try #require(r.wireLog.streams.first)
    let offending = try #require(stream.rows.first { $0.message == message })
    #expect(offending.forged == "cancel")
    #expect(offending.type == "stream_cancel")
    #expect(offending.offending == ["foreign_cancel_ignored"])
    let html = HTMLReport.render(report([r]))
    let highlighted = rowClasses(html).filter { $0.contains("offending") }
    #expect(highlighted.count == 1)
    #expect(highlighted.first?.contains("forged") == true)
    #expect(html.contains("counterexample of foreign_cancel_ignored"))
    #expect(html.contains("&quot;type&quot;:&quot;stream_cancel&quot;"), "the forged message's JSON, escaped")
  }

  @Test("a passing run keeps only a short sample of its history")
  func passingRunKeepsASample() throws {
    let r = try run("ordering-large-count.json")
    #expect(r.verdict == .pass)
    #expect(r.wireLog.streams.count == 1)
    #expect(r.wireLog.streams.allSatisfy { $0.reason == .sample && $0.rows.count <= WireLog.sampleLimit + 16 })
  }
}

@Suite("Wire log excerpt")
struct WireLogExcerptTests {
  /// One stream of `n` chunks; chunk `lost` dropped, chunk `cut` cut off, chunk `dup` duplicated.
  func history(chunks n: Int, lost: Int, cut: Int, dup: Int) -> History {
    var h = History()
    h.workers = ["consumer", "producer", "intruder"]
    h.scenarioWorkers = 3
    var info = StreamInfo(
      group: 0, consumer: 0, producer: 1, method: "m", requestPayload: 0, timeout: 1_000_000_000,
      plannedChunks: n, plannedFinish: .end)
    info.streamId = "s0"
    h.streams = [info]
    h.events.append(Entry(t: 0, event: .opened(0)))
    func send(_ type: MessageType, from: Int32, to: Int32, seq: Int32, at t: Int64, origin: WireRecord.Origin = .bus)
      -> Int32
    {
      let m = Int32(h.wire.count)
      h.wire.append(
        WireRecord(
          type: type, from: from, to: to, stream: 0, seq: seq, payload: 0, problem: -1, error: -1,
          messageId: UInt64(m), traceOK: nil, creditFrame: false, origin: origin, t: t))
      h.events.append(Entry(t: t, event: .sent(m)))
      return m
    }
    let request = send(.streamRequest, from: 0, to: 1, seq: -1, at: 0)
    h.events.append(Entry(t: 0, event: .delivered(request, to: 1)))
    for k in 0..<n {
      let t = Int64(k + 1) * 1_000_000
      let m = send(.streamChunk, from: 1, to: 0, seq: Int32(k), at: t)
      switch k {
      case lost: h.events.append(Entry(t: t, event: .fault(m, .dropped)))
      case cut: h.events.append(Entry(t: t, event: .fault(m, .cutOff)))
      case dup:
        h.events.append(Entry(t: t, event: .fault(m, .duplicated)))
        h.events.append(Entry(t: t, event: .delivered(m, to: 0)))
        h.events.append(Entry(t: t, event: .delivered(m, to: 0)))
      default: h.events.append(Entry(t: t, event: .delivered(m, to: 0)))
      }
    }
    let forged = send(.streamCancel, from: 2, to: 1, seq: -1, at: 500_000, origin: .forged("cancel"))
    h.events.append(Entry(t: 500_000, event: .delivered(forged, to: 1)))
    h.exhibits[forged] = #"{"type":"stream_cancel"}"#
    h.endedAt = Int64(n + 1) * 1_000_000
    return h
  }

  func failing(message: Int?, stream: Int = 0) -> CheckResult {
    CheckResult(
      name: "foreign_cancel_ignored", rule: "KSP-7.3", level: .must, verdict: .fail, expected: "e", observed: "o",
      counterexample: Counterexample(stream: stream, message: message, atMs: 0.5, text: "took a forged cancel"))
  }

  @Test("every fate is recorded on its row, and the offending forged message is marked")
  func fates() {
    let h = history(chunks: 20, lost: 3, cut: 5, dup: 7)
    let forged = h.wire.count - 1
    let log = WireLog.excerpt(RunRecord(history: h, metrics: Metrics()), checks: [failing(message: forged)])
    let rows = log.streams.first?.rows ?? []
    #expect(log.streams.count == 1)
    #expect(rows.first { $0.seq == 3 && $0.type == "stream_chunk" }?.fates == [.lost])
    #expect(rows.first { $0.seq == 5 && $0.type == "stream_chunk" }?.fates == [.cutOff])
    let dup = rows.first { $0.seq == 7 && $0.type == "stream_chunk" }
    #expect(dup?.fates == [.duplicated] && dup?.deliveries == 2)
    let cancel = rows.first { $0.message == forged }
    #expect(cancel?.forged == "cancel" && cancel?.offending == ["foreign_cancel_ignored"])
    #expect(cancel?.exhibit == #"{"type":"stream_cancel"}"#)
    #expect(rows.contains { $0.type == "no terminal callback" }, "a stream that never ended says so")
  }

  @Test("a long stream is bounded: the counterexample, the start and the end kept, the rest counted")
  func bounded() throws {
    let n = 100_000
    let h = history(chunks: n, lost: 50_000, cut: 70_000, dup: 90_000)
    let forged = h.wire.count - 1
    var late = failing(message: nil)
    late.counterexample = Counterexample(stream: 0, atMs: 60_000, text: "onChunk out of order")
    late.name = "seq_delivery"
    let log = WireLog.excerpt(RunRecord(history: h, metrics: Metrics()), checks: [failing(message: forged), late])
    let stream = try #require(log.streams.first)
    let messages = stream.rows.filter { !$0.isEvent }
    #expect(messages.count <= WireLog.rowLimit)
    #expect(stream.messages == n + 2)
    let skipped = messages.reduce(0) { $0 + $1.skippedBefore } + stream.skippedAfter
    #expect(messages.count + skipped == n + 2, "every message is kept or counted")
    #expect(messages.contains { $0.message == forged })
    #expect(messages.contains { $0.seq == 0 }, "the start")
    #expect(messages.contains { $0.seq == n - 1 }, "the end")
    #expect(messages.contains { $0.seq == 59_999 }, "around the counterexample's time")
    #expect(messages.contains { $0.seq == 50_000 && $0.fates == [.lost] }, "faulted messages before plain ones")
  }

  @Test("a run that passed keeps a sample; one that failed without a counterexample keeps nothing")
  func sampleOnlyWhenNothingFailed() {
    let h = history(chunks: 100, lost: -1, cut: -1, dup: -1)
    let record = RunRecord(history: h, metrics: Metrics())
    let sample = WireLog.excerpt(record, checks: [])
    #expect(sample.streams.map(\.reason) == [.sample])
    #expect((sample.streams.first?.rows.filter { !$0.isEvent }.count ?? 0) <= WireLog.sampleLimit)
    let perf = CheckResult(name: "m", rule: "PERF", level: .perf, verdict: .fail, expected: "e", observed: "o")
    #expect(WireLog.excerpt(record, checks: [perf]).isEmpty)
  }
}

@Suite("Chart ticks and units")
struct ChartScaleTests {
  @Test("ticks are round (1, 2 or 5 × 10^k) and cover the data")
  func roundTicks() {
    for (lo, hi) in [(0.0, 7524.0), (0, 4120), (0, 0.213), (3, 97), (0, 1), (-12, 130), (1e6, 2.5e6), (5, 5)] {
      let t = Ticks.nice(lo, hi)
      let mantissa = t.step / pow(10, log10(t.step).rounded(.down))
      #expect([1, 2, 5].contains { abs(mantissa - $0) < 1e-9 }, "step \(t.step) for \(lo)…\(hi)")
      #expect((t.values.first ?? .infinity) <= min(lo, hi) && (t.values.last ?? -.infinity) >= max(lo, hi))
      #expect((3...11).contains(t.values.count), "\(t.values)")
      for v in t.values { #expect(abs(v / t.step - (v / t.step).rounded()) < 1e-9) }
    }
    #expect(Ticks.nice(0, 7524).values == [0, 2000, 4000, 6000, 8000])
    let small = Ticks.nice(0, 0.213)
    #expect(small.values.map { Ticks.label($0, step: small.step) } == ["0", "0.1", "0.2", "0.3"])
    #expect(Ticks.label(2000, step: 1000) == "2000")
  }

  @Test("durations and sizes are shown in the unit their magnitude calls for")
  func units() {
    #expect(Units.duration(us: 2_500_010) == "2.50 s")
    #expect(Units.duration(us: 850) == "850 µs")
    #expect(Units.duration(us: 12_345) == "12.3 ms")
    #expect(Units.duration(us: 0.5) == "500 ns")
    #expect(Units.duration(us: 3.25) == "3.25 µs")
    #expect(Units.duration(us: 750e6) == "12 min 30 s")
    #expect(Units.duration(ms: 60_000) == "60.0 s")
    #expect(Units.bytes(512) == "512 B")
    #expect(Units.bytes(1_536) == "1.50 KiB")
    #expect(Units.bytes(3.5 * 1_048_576) == "3.50 MiB")
    #expect(Units.bytes(2 * 1_073_741_824) == "2.00 GiB")
    #expect(Units.count(1_234_567) == "1\u{202F}234\u{202F}567")
    #expect((0...5).map(Units.percentile(decade:)) == ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
  }

  @Test("the percentile chart's axis is logarithmic and labelled to its end")
  func percentileAxis() {
    let curve = [0.0, 50, 90, 99, 99.9, 99.99, 100].map { (x: $0, y: $0 == 100 ? 2_500_010 : 100 + $0) }
    let svg = Chart.line(
      title: "latency", x: .percentile(decades: 4), y: .durationUs, yLabel: "latency",
      series: [Chart.Series(name: "a", color: "#000", points: curve)]
    ).render()
    for label in ["0%", "50%", "90%", "99%", "99.9%", "99.99%"] {
      #expect(svg.contains(">\(label)</text>"), "\(label)")
    }
    #expect(svg.contains("latency (s)"), "the unit follows the largest value")
    #expect(svg.contains(">3</text>") || svg.contains(">2.5</text>"), "round ticks in seconds")
    // 90 % sits at a quarter of the axis (one decade of four), not at 90 % of it.
    #expect(svg.contains("x1=\"\(Chart.f(Chart.left + (Chart.width - Chart.left - Chart.right) / 4))\""))
  }
}

@Suite("Report documentation")
struct ReportDocumentationTests {
  @Test("the README's wire log section names every fate and the excerpt's bounds as the code has them")
  func readmeMatchesWireLog() throws {
    let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
    let section = try #require(
      readme.components(separatedBy: "## Reports").dropFirst().first?
        .components(separatedBy: "\n## ").first)
    let documented = section.split(separator: "\n").filter { $0.hasPrefix("| `") }.compactMap {
      $0.split(separator: "`").dropFirst().first.map(String.init)
    }
    #expect(documented == WireLog.Fate.allCases.map(\.rawValue))
    #expect(section.contains("at most \(WireLog.streamLimit) streams of at most \(WireLog.rowLimit) messages"))
    #expect(section.contains("at most \(WireLog.sampleLimit) messages"))
    #expect(section.contains("Runs of six or more") && HTMLReport.foldAt == 6)
  }
}
