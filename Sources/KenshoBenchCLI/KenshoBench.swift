import ArgumentParser
import Foundation
import KenshoAdapterProtocol
@_spi(Testing) import KenshoHarness
import KenshoMemory
import KenshoProtocol
import KenshoRelay
import KenshoReport
import KenshoScenario
import KenshoVerdict
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Exit codes: 0 all passed, 1 a scenario failed (or the run was interrupted), 2 bad input or
/// usage, 3 a regression; 128 + the signal's number when a second signal ends the run at once.
enum Exit {
  static let failed = ExitCode(1)
  static let badInput = ExitCode(2)
  static let regressed = ExitCode(3)
}

/// The ranges of the command line's numbers.
enum OptionRanges {
  /// `--deadline` and `--adapter-timeout`, in seconds: a millisecond to 10^6 s (11.6 days, the
  /// longest scenario time).
  static let seconds: ClosedRange<Double> = 0.001...1_000_000
  /// `--max-regression`, a fraction.
  static let regression: ClosedRange<Double> = 0...ScenarioLimits.maxRegression
  /// `--seed`: the range of a scenario's `seed`.
  static let seed: ClosedRange<UInt64> = 0...UInt64(Int64.max)

  /// Throws a usage error unless `value` is a finite number in `range`.
  static func check(_ option: String, _ value: Double, in range: ClosedRange<Double>, _ unit: String) throws {
    guard value.isFinite, range.contains(value) else {
      throw ValidationError(
        "\(option) must be \(unit) from \(format(range.lowerBound)) to \(format(range.upperBound)), got \(value)")
    }
  }

  static func format(_ d: Double) -> String {
    d == d.rounded() && d.magnitude < 1e15 ? String(Int64(d)) : String(d)
  }
}

@main
struct KenshoBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kensho-bench",
    abstract: "Runs Kensho streaming scenarios (KSP/1) and reports a verdict per scenario and per rule.",
    discussion: """
      Exit codes: 0 every scenario passed, 1 a scenario failed or the run was interrupted,
      2 bad input or usage, 3 a metric regressed against --baseline (the scenarios themselves
      passed), 128 + N when a second signal N ends the run at once (130 for SIGINT, 143 for SIGTERM).
      Reports go to --out (default Reports/): kensho-report.json, kensho-report.html,
      kensho-junit.xml, and hgrm/*.hgrm latency histograms.
      """,
    version: KenshoVersion.current,
    subcommands: [
      Run.self, List.self, Validate.self, Schema.self, Matrix.self, Catalogue.self, Relay.self, RelayLoadCommand.self,
      JudgeCommand.self,
    ],
    defaultSubcommand: Run.self)

  /// Parses, runs, and maps usage errors to exit code 2 (ArgumentParser's own is 64).
  static func main() {
    // Output to a closed pipe (`kensho-bench | head`) must not end the run before its reports.
    signal(SIGPIPE, SIG_IGN)
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      let code = exitCode(for: error)
      if code == .success {
        print(terminalSafe(fullMessage(for: error)))
        Foundation.exit(0)
      }
      if error is ExitCode {
        Foundation.exit(code.rawValue)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty { printError(terminalSafe(message)) }
      Foundation.exit(code == .validationFailure ? Exit.badInput.rawValue : code.rawValue)
    }
  }

  /// A message of ArgumentParser's, which quotes the command line as it was typed: each
  /// argument that holds control characters is escaped where it appears, then the rest, line
  /// breaks of the message kept.
  static func terminalSafe(_ message: String) -> String {
    var text = message
    for argument in CommandLine.arguments.dropFirst() {
      let pieces = [argument] + (argument.split(separator: "=", maxSplits: 1).dropFirst().map(String.init))
      for piece in pieces where !piece.isEmpty && SafeText.escape(piece) != piece {
        text = text.replacingOccurrences(of: piece, with: SafeText.escape(piece))
      }
    }
    return SafeText.escape(text, keepingNewlines: true)
  }
}

/// Writes one line to stderr.
func printError(_ line: String) {
  FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// An error as a person reads it, safe to print.
func describe(_ error: any Error) -> String {
  if let e = error as? DecodingError {
    switch e {
    case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
      let path = "$" + c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
      return SafeText.escape("\(path): \(c.debugDescription)")
    @unknown default: return SafeText.escape("\(e)")
    }
  }
  if let e = error as? ValidationError { return SafeText.escape(e.message) }
  return SafeText.escape(error.localizedDescription)
}

/// A kensho-report/1 JSON file, or exit 2 naming the file and the problem.
func loadReport(_ path: String) throws -> RunReport {
  do {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data: Data
    switch ScenarioLoader.readRegularFile(path, maxBytes: 1 << 30) {
    case .success(let d): data = d
    case .failure(let problem): throw ValidationError("\(problem.expected), found \(problem.found)")
    }
    let report = try decoder.decode(RunReport.self, from: data)
    guard report.format == RunReport.format else {
      throw ValidationError("format is \"\(report.format)\", expected \"\(RunReport.format)\"")
    }
    return report
  } catch {
    printError("error: \(SafeText.escape(path)): expected a kensho-report/1 JSON report, \(describe(error))")
    throw Exit.badInput
  }
}

/// `target`'s path as seen from `folder`.
func relativePath(_ target: URL, from folder: URL) -> String {
  let a = folder.standardizedFileURL.pathComponents
  let b = target.standardizedFileURL.pathComponents
  var common = 0
  while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
  return (Array(repeating: "..", count: a.count - common) + b[common...]).joined(separator: "/")
}

/// Loads every scenario under the paths, or prints every problem and exits 2. With
/// `checkMemory`, a scenario this machine cannot hold (``Scenario/footprint``) is a problem too.
func loadScenarios(_ paths: [String], filter: String?, checkMemory: Bool = true) throws -> [Scenario] {
  try Inputs.checkPathsExist(paths)
  var problems: [ScenarioProblem] = []
  var scenarios: [Scenario] = []
  do {
    for file in try ScenarioLoader.files(in: paths) {
      do {
        scenarios.append(try ScenarioLoader.load(file: file))
      } catch {
        problems.append(contentsOf: error.problems)
      }
    }
  } catch {
    problems.append(contentsOf: error.problems)
  }
  // Reports, histograms and baselines know a scenario by its name: two of one name would
  // overwrite each other and compare against each other (a false regression).
  var firstOfName: [String: String] = [:]
  for scenario in scenarios {
    let file = scenario.file ?? scenario.name
    if let other = firstOfName[scenario.name] {
      problems.append(
        ScenarioProblem(
          file: file, path: "$.name", expected: "a name no other scenario of the run has (reports key on it)",
          found: "\(SafeText.quoted(scenario.name)), the name of \(SafeText.escape(other)) too"))
    } else {
      firstOfName[scenario.name] = file
    }
  }
  if let filter, problems.isEmpty {
    let all = scenarios.count
    scenarios = scenarios.filter { $0.name.contains(filter) || ($0.file ?? "").contains(filter) }
    if scenarios.isEmpty && all > 0 {
      printError(
        "error: --filter \(SafeText.escape(ShellWords.quote(filter))) matches no name or file of the \(all) scenarios in "
          + SafeText.escape(paths.joined(separator: " ")))
      throw Exit.badInput
    }
  }
  if checkMemory {
    let budget = ScenarioLoader.machineMemoryBudget
    problems += scenarios.compactMap {
      ScenarioLoader.memoryProblem($0, budget: budget.bytes, machine: budget.description)
    }
  }
  if !problems.isEmpty {
    // Each problem is one line, whatever the file held (ScenarioProblem escapes it).
    for p in problems { printError("error: \(p)") }
    throw Exit.badInput
  }
  return scenarios
}

/// Which scenarios a command works on: files or folders, narrowed by `--filter`.
struct ScenarioSelection: ParsableArguments {
  @Argument(help: "Scenario files or folders of them.")
  var paths: [String] = ["Scenarios"]

  @Option(help: "Only scenarios whose name or file contains this text.")
  var filter: String?

  /// The selected scenarios, or exit 2 with every problem.
  func load(checkMemory: Bool = true) throws -> [Scenario] {
    try loadScenarios(paths, filter: filter, checkMemory: checkMemory)
  }
}

extension KenshoBench {
  struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run scenarios (files or folders) and write reports.")

    @OptionGroup var selection: ScenarioSelection

    @Option(help: "Folder for the reports.")
    var out = "Reports"

    @Option(help: "Seed for every scenario, instead of each file's own.")
    var seed: UInt64?

    @Option(help: "Wall-clock seconds a scenario may take before it is stopped with verdict error.")
    var deadline: Double = 300

    @Option(help: "Report formats, comma-separated: json, html, junit.")
    var format = "json,html,junit"

    @Option(help: "A previous kensho-report.json to compare metrics with; a regression exits 3.")
    var baseline: String?

    @Option(help: "How much worse a metric may get than in --baseline, as a fraction (0.25 = 25 %).")
    var maxRegression = 0.25

    @Flag(help: "Turn latency and memory measurement off (memory checks become unsupported).")
    var noMeasure = false

    @Option(help: "Run against the implementation this command starts (adapter protocol), not the reference bus.")
    var impl: String?

    @Option(help: "Seconds an adapter may take to answer one operation.")
    var adapterTimeout: Double = 20

    @Option(help: "Run relay scenarios over the relay at this ws:// address, not an embedded one.")
    var relayUrl: String?

    @Option(
      help:
        "Run relay scenarios over the relay this command starts (its port in KENSHO_RELAY_PORT, the token in KENSHO_RELAY_TOKEN; it prints `listening ws://HOST:PORT/`); stopped afterwards."
    )
    var relayCmd: String?

    @Option(help: "The token for --relay-url, instead of the scenario's network.token.")
    var relayToken: String?

    @Option(
      name: .customLong("repeat"),
      help: ArgumentHelp(
        "Run each scenario this many times; wall-clock figures are compared with --baseline only when both runs repeated (2 or more).",
        valueName: "n"))
    var repeats = 1

    @Flag(name: .shortAndLong, help: "Print only scenarios that did not pass, and the summary.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print every check of every scenario, and what the run did before it started.")
    var verbose = false

    @Option(help: .hidden)
    var heartbeat: Double = 10

    @Flag(help: .hidden)
    var leakingReferenceForTesting = false

    var formats: Set<ReportFormat> {
      Set(format.split(separator: ",").compactMap { ReportFormat(rawValue: $0.trimmingCharacters(in: .whitespaces)) })
    }

    func validate() throws {
      try OptionRanges.check("--deadline", deadline, in: OptionRanges.seconds, "a number of seconds")
      if relayUrl != nil && relayCmd != nil {
        throw ValidationError("--relay-url and --relay-cmd exclude each other: one names a relay, the other starts one")
      }
      if let relayUrl {
        do { _ = try RelayURL(relayUrl) } catch { throw ValidationError("--relay-url: \(error)") }
      }
      try OptionRanges.check("--adapter-timeout", adapterTimeout, in: OptionRanges.seconds, "a number of seconds")
      try OptionRanges.check("--max-regression", maxRegression, in: OptionRanges.regression, "a fraction")
      if let seed, !OptionRanges.seed.contains(seed) {
        throw ValidationError(
          "--seed must be an integer from 0 to \(OptionRanges.seed.upperBound) (as a scenario's seed), got \(seed)")
      }
      let names = format.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
      for name in names where ReportFormat(rawValue: name) == nil {
        throw ValidationError("--format: unknown format '\(name)'; expected json, html or junit")
      }
      guard !names.isEmpty else { throw ValidationError("--format needs at least one of json, html, junit") }
      guard !out.isEmpty else { throw ValidationError("--out must name a folder") }
      guard (1...1000).contains(repeats) else {
        throw ValidationError("--repeat must be from 1 to 1000, got \(repeats)")
      }
      guard !(quiet && verbose) else { throw ValidationError("--quiet and --verbose cannot be used together") }
      try OptionRanges.check("--heartbeat", heartbeat, in: OptionRanges.seconds, "a number of seconds")
      if let impl {
        do throws(ShellWords.Problem) {
          _ = try ShellWords.split(impl)
        } catch {
          throw ValidationError("--impl: \(error)")
        }
      }
    }

    /// The baseline report, or exit 2 naming the file and what is wrong with it.
    func loadBaseline() throws -> RunReport? {
      try baseline.map(loadReport)
    }

    func run() throws {
      let scenarios = try selection.load()
      guard !scenarios.isEmpty else {
        printError("error: no scenario matches \(SafeText.escape(selection.paths.joined(separator: " ")))")
        throw Exit.badInput
      }
      let baselineReport = try loadBaseline()
      let console = Console(quiet: quiet, verbose: verbose, heartbeat: heartbeat)
      let started = Date()
      let folder = URL(fileURLWithPath: out)
      let formats = self.formats
      // Described once the signal handlers are in place (describing starts the implementation).
      let implementation = Mutex(impl ?? "reference (in process)")
      let (seed, maxRegression, baselinePath) = (self.seed, self.maxRegression, self.baseline)
      let repeats = self.repeats
      let limits = Dictionary(scenarios.map { ($0.name, $0.regressionLimits) }, uniquingKeysWith: { a, _ in a })
      let makeReport: @Sendable ([ScenarioResult], Bool, String?) -> RunReport = { results, complete, signal in
        var report = RunReport(
          results: results,
          metadata: RunReport.Metadata(
            implementation: implementation.withLock { $0 }, seed: seed, startedAt: started, finishedAt: Date(),
            arguments: CommandLine.arguments, jemalloc: Jemalloc.version),
          complete: complete)
        report.interruptedBy = signal
        report.repeats = repeats > 1 ? repeats : nil
        if let baselineReport {
          var (regressions, summary) = BaselineComparison.compare(
            current: results, baseline: baselineReport, defaultLimit: maxRegression, limits: limits)
          summary.file = baselinePath
          report.regressions = regressions
          report.baseline = summary
        }
        return report
      }
      let recorder = RunRecorder()
      let interruption = Interruption.install { signal in
        printError(
          "kensho-bench: \(signal.name): stopping; the reports will be marked incomplete "
            + "(\(signal.name) again exits at once)")
        // The harness polls the flag; should it not return in time (an operation that blocks),
        // the reports are written from what has finished, and the process exits.
        DispatchQueue.global().asyncAfter(deadline: .now() + Interruption.grace) {
          var failure: (any Error)?
          let wrote = recorder.writeOnce { results, current in
            var all = results
            if let current { all.append(Interruption.unfinished(current, seed: seed, signal: signal)) }
            do {
              try ReportWriter.write(makeReport(all, false, signal.name), formats: formats, to: folder)
            } catch {
              failure = error
            }
          }
          guard wrote else { return }  // the run stopped in time and wrote them itself
          printError(
            "kensho-bench: the run did not stop within \(Interruption.graceText) of \(signal.name); "
              + (failure.map { "cannot write the reports to \(SafeText.escape(folder.path)): \(describe($0))" }
                ?? "reports written to \(SafeText.escape(folder.path)), marked incomplete"))
          fflush(nil)
          _exit(Exit.failed.rawValue)
        }
      }
      if let impl {
        // The program must exist and answer the handshake before anything runs.
        let described = try Inputs.checkImplementation(impl, deadline: adapterTimeout)
        implementation.withLock { $0 = "\(described) (\(impl))" }
        console.detail("implementation: \(SafeText.escape(described)) (\(SafeText.escape(impl)))")
      }
      if let why = Inputs.unwritable(folder) {
        printError("error: --out: cannot write the reports to \(SafeText.escape(folder.path)): \(SafeText.escape(why))")
        throw Exit.badInput
      }
      // What an earlier run left in --out would be taken for this run's (stale histograms).
      do {
        for path in try Inputs.clearEarlierRun(in: folder) { console.detail("removed \(SafeText.escape(path))") }
      } catch {
        printError(
          "error: cannot clear the reports of an earlier run from \(SafeText.escape(folder.path)): \(describe(error))")
        throw Exit.badInput
      }
      var options = RunOptions(measure: !noMeasure, profileDirectory: out, cancelled: interruption.cancelled)
      options.leakingReference = leakingReferenceForTesting
      options.adapterCommand = impl
      options.adapterDeadline = Nanos.duration(seconds: adapterTimeout)
      options.relayURL = relayUrl
      options.relayCommand = relayCmd
      options.relayToken = relayToken
      let logURL = folder.appendingPathComponent("adapter-stderr.log")
      if impl != nil {
        try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try? FileHandle(forWritingTo: logURL)
        options.adapterLog = { text in log?.write(Data(text.utf8)) }
      }
      let runner = ScenarioRunner(seed: seed, wallDeadline: Nanos.duration(seconds: deadline), options: options)
      for (i, scenario) in scenarios.enumerated() {
        if interruption.happened { break }
        recorder.begin(scenario)
        var runs: [ScenarioResult] = []
        for k in 0..<repeats {
          if k > 0 && interruption.happened { break }
          let position = "\(i + 1)/\(scenarios.count)"
          let note = repeats > 1 ? "run \(k + 1) of \(repeats)" : ""
          console.status(position, scenario.name, nil, note: note)
          runs.append(
            runner.run(scenario) { progress in console.status(position, scenario.name, progress, note: note) })
        }
        guard let result = Self.combine(runs) else { break }
        recorder.finish(result)
        if !quiet || !result.verdict.isSuccess {
          console.say(line(result, console: console, runs: runs))
        }
      }
      console.clearLive()
      var written: (report: RunReport, error: (any Error)?)?
      let wrote = recorder.writeOnce { results, _ in
        let complete = results.count == scenarios.count && !interruption.happened
        let report = makeReport(results, complete, interruption.signal?.name)
        do {
          try ReportWriter.write(report, formats: formats, to: folder)
          written = (report, nil)
        } catch {
          written = (report, error)
        }
      }
      guard wrote, let (report, error) = written else {
        // The watchdog is writing the reports and ends the process.
        while true { Thread.sleep(forTimeInterval: 1) }
      }
      if let error {
        printError("error: cannot write the reports to \(SafeText.escape(folder.path)): \(describe(error))")
        throw Exit.badInput
      }
      let s = report.summary
      let stopped = report.interruptedBy.map { " (interrupted by \($0))" } ?? (report.complete ? "" : " (interrupted)")
      console.say(
        "\(s.scenarios) scenarios: \(s.passed) passed, \(s.failed) failed, \(s.errors) errors, "
          + "\(s.nonStrict) non-strict, \(s.unsupported) unsupported, \(s.untested) untested\(stopped) — reports in "
          + SafeText.escape(folder.path))
      if let summary = report.baseline {
        let regressions = report.regressions ?? []
        console.say(
          "baseline: \(summary.exact) deterministic figures compared exactly, \(summary.repeated) wall-clock figures "
            + "over repeated runs; \(regressions.isEmpty ? "no regression" : "\(regressions.count) regressions")")
        for note in summary.notes.dropFirst(2) { console.say("  \(SafeText.escape(note))") }
        for note in summary.notes.prefix(2) { console.detail("  \(SafeText.escape(note))") }
      }
      for r in report.regressions ?? [] {
        console.say(
          console.paint("REGRESSION", .fail) + " "
            + SafeText.escape(
              "\(r.scenario) \(r.metric): baseline \(r.baseline), now \(r.current) (allowed \(r.allowed)"
                + (r.rule.map { "; \($0)" } ?? "") + ")"))
      }
      if !report.complete || !s.verdict.isSuccess { throw Exit.failed }
      if !(report.regressions ?? []).isEmpty { throw Exit.regressed }
    }

    /// One result for the repeats of a scenario: the first run with the worst verdict (so that
    /// a failure in any repeat is not hidden), with every run's figures when there were several.
    static func combine(_ runs: [ScenarioResult]) -> ScenarioResult? {
      guard let worst = runs.map(\.verdict).max(), var result = runs.first(where: { $0.verdict == worst }) else {
        return nil
      }
      if runs.count > 1 { result.figures = BaselineComparison.values(of: runs.map(\.metrics)) }
      return result
    }

    /// A scenario's result for the terminal: every text from the scenario or the
    /// implementation escaped, one line each; with `--verbose`, every check.
    func line(_ r: ScenarioResult, console: Console? = nil, runs: [ScenarioResult] = []) -> String {
      let tag = r.verdict.label.padding(toLength: 11, withPad: " ", startingAt: 0)
      let e = { (text: String) in SafeText.escape(text) }
      let passed = r.checks.filter { $0.verdict == .pass }.count
      var text =
        "\(console?.paint(tag, r.verdict) ?? tag) \(e(r.name))  \(passed)/\(r.checks.count) checks  "
        + String(format: "%.2f s", r.metrics.wallSeconds)
      if runs.count > 1 {
        let verdicts = runs.map(\.verdict.label)
        text +=
          Set(verdicts).count > 1
          ? "  (\(runs.count) runs: \(verdicts.joined(separator: ", ")))" : "  (\(runs.count) runs)"
      }
      if let profile = r.heapProfile { text += "\n      heap profile: \(e(profile))" }
      for finding in r.findings { text += "\n      finding: \(e(finding.text))" }
      for c in r.checks where c.verdict != .pass || verbose {
        text +=
          "\n      \(console?.paint(c.verdict.label, c.verdict) ?? c.verdict.label) \(e(c.rule)) \(e(c.name)): "
          + "expected \(e(c.expected)); observed \(e(c.observed))"
        if let d = c.detail { text += "\n        \(e(d))" }
      }
      return text
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List scenarios with the rules they check.")

    @OptionGroup var selection: ScenarioSelection

    func run() throws {
      for s in try selection.load(checkMemory: false) {
        print(SafeText.escape("\(s.name)  [\(s.rules.joined(separator: " "))]  \(s.file ?? "")"))
        if !s.description.isEmpty { print("    \(SafeText.escape(s.description))") }
      }
    }
  }

  struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check scenario files; print each problem with its file and JSON path.")

    @Argument(help: "Scenario files or folders of them.")
    var paths: [String]

    func run() throws {
      let scenarios = try loadScenarios(paths, filter: nil)
      guard !scenarios.isEmpty else {
        printError("error: no scenario file in \(SafeText.escape(paths.joined(separator: " ")))")
        throw Exit.badInput
      }
      print("\(scenarios.count) scenario files valid")
    }
  }

  struct Matrix: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Build the conformance matrix (implementations by rules) from kensho-report.json files.")

    @Argument(help: "Reports of runs against different implementations.")
    var reports: [String]

    @Option(help: "Folder for kensho-matrix.html and kensho-matrix.json.")
    var out = "Reports"

    func run() throws {
      let folder = URL(fileURLWithPath: out)
      var columns: [ConformanceMatrix.Column] = []
      for path in reports {
        let report = try loadReport(path)
        let html = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("kensho-report.html")
        let link = FileManager.default.fileExists(atPath: html.path) ? relativePath(html, from: folder) : nil
        columns.append(ConformanceMatrix.Column(implementation: report.run.implementation, link: link, report: report))
      }
      try AtomicFile.write(
        Data(ConformanceMatrix.html(columns).utf8), to: folder.appendingPathComponent("kensho-matrix.html"))
      try AtomicFile.write(try ConformanceMatrix.json(columns), to: folder.appendingPathComponent("kensho-matrix.json"))
      for c in columns {
        let grades = Dictionary(grouping: c.report.rules, by: \.grade.label).mapValues(\.count)
        print(
          SafeText.escape(
            "\(c.implementation): "
              + grades.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
      }
      print("matrix in \(SafeText.escape(folder.appendingPathComponent("kensho-matrix.html").path))")
    }
  }

  struct Catalogue: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run scenarios against each catalogued defect of an implementation and report the catch rate.",
      discussion: "The implementation lists its defects with `--list-defects` (NAME<TAB>text per line) and "
        + "switches one on with `--defect NAME`, as Adapters/node/adapter.mjs does.")

    @OptionGroup var selection: ScenarioSelection

    @Option(help: "The adapter command of the implementation.")
    var impl: String

    @Option(help: "Folder for kensho-catalogue.json.")
    var out = "Reports"

    @Option(help: "Seconds the implementation may take to answer one operation, or to list its defects.")
    var adapterTimeout: Double = 20

    @Option(help: .hidden)
    var heartbeat: Double = 10

    func validate() throws {
      try OptionRanges.check("--adapter-timeout", adapterTimeout, in: OptionRanges.seconds, "a number of seconds")
      try OptionRanges.check("--heartbeat", heartbeat, in: OptionRanges.seconds, "a number of seconds")
      do throws(ShellWords.Problem) {
        _ = try ShellWords.split(impl)
      } catch {
        throw ValidationError("--impl: \(error)")
      }
    }

    /// What the catalogue has so far, written once: at the end, or by the watchdog of an
    /// interrupted run that did not stop in time.
    final class Progress: Sendable {
      struct State {
        var entries: [DefectCatalogue.Entry] = []
        var written = false
      }
      let state = Mutex(State())

      func add(_ entry: DefectCatalogue.Entry) { state.withLock { $0.entries.append(entry) } }

      /// Runs `write` with the entries unless it already ran; returns whether it ran.
      func writeOnce(_ write: ([DefectCatalogue.Entry]) -> Void) -> Bool {
        state.withLock { s in
          guard !s.written else { return false }
          s.written = true
          write(s.entries)
          return true
        }
      }
    }

    func run() throws {
      let scenarios = try selection.load()
      let console = Console(quiet: false, verbose: false, heartbeat: heartbeat)
      let file = URL(fileURLWithPath: out).appendingPathComponent("kensho-catalogue.json")
      let progress = Progress()
      let listed = Mutex(0)
      let impl = self.impl
      /// Writes what the catalogue has; returns the error, if writing failed.
      let write: @Sendable ([DefectCatalogue.Entry], Bool, String?) -> (any Error)? = { entries, complete, signal in
        do {
          try AtomicFile.write(
            Data(
              try DefectCatalogue.json(
                implementation: impl, entries: entries, complete: complete, listed: listed.withLock { $0 },
                interruptedBy: signal)),
            to: file)
          return nil
        } catch {
          return error
        }
      }
      let interruption = Interruption.install { signal in
        printError(
          "kensho-bench: \(signal.name): stopping; the catalogue will be marked incomplete "
            + "(\(signal.name) again exits at once)")
        DispatchQueue.global().asyncAfter(deadline: .now() + Interruption.grace) {
          var failure: (any Error)?
          let wrote = progress.writeOnce { entries in failure = write(entries, false, signal.name) }
          guard wrote else { return }
          printError(
            "kensho-bench: the run did not stop within \(Interruption.graceText) of \(signal.name); "
              + (failure.map { "cannot write \(SafeText.escape(file.path)): \(describe($0))" }
                ?? "what was judged is in \(SafeText.escape(file.path)), marked incomplete"))
          fflush(nil)
          _exit(Exit.failed.rawValue)
        }
      }
      let described = try Inputs.checkImplementation(impl, deadline: adapterTimeout)
      console.say("implementation: \(SafeText.escape(described))")
      let words = (try? ShellWords.split(impl)) ?? []
      let defects = DefectCatalogue.parse(
        listing: try Inputs.output(of: words + ["--list-defects"], deadline: adapterTimeout, what: "--list-defects"))
      guard !defects.isEmpty else {
        printError("error: \(SafeText.escape(impl)) --list-defects listed no defect")
        throw Exit.badInput
      }
      listed.withLock { $0 = defects.count }
      let stop = interruption.cancelled
      let deadline = adapterTimeout
      func runAll(_ command: String, _ label: String) -> [ScenarioResult]? {
        var options = RunOptions(cancelled: stop)
        options.adapterCommand = command
        options.adapterDeadline = Nanos.duration(seconds: deadline)
        let runner = ScenarioRunner(options: options)
        var results: [ScenarioResult] = []
        for (i, scenario) in scenarios.enumerated() {
          if stop() { return nil }
          let position = "\(i + 1)/\(scenarios.count)"
          if console.mode == .lines {
            console.say(SafeText.escape("  \(label): scenario \(i + 1) of \(scenarios.count), \(scenario.name)"))
          }
          console.status(position, scenario.name, nil, note: label)
          results.append(
            runner.run(scenario) { p in console.status(position, scenario.name, p, note: label) })
        }
        return results
      }
      var complete = false
      if let clean = runAll(impl, "without defects") {
        complete = true
        for (k, defect) in defects.enumerated() {
          guard
            let broken = runAll(
              ShellWords.join(words + ["--defect", defect.name]), "defect \(k + 1) of \(defects.count) \(defect.name)")
          else {
            complete = false
            break
          }
          let entry = DefectCatalogue.judge(defect, clean: clean, broken: broken)
          progress.add(entry)
          let counts = entry.verdicts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
          let outcome = entry.outcome == .caught ? console.paint("CAUGHT", .pass) : console.paint("MISSED", .fail)
          console.say(
            outcome + " "
              + SafeText.escape(
                "\(defect.name)  claims \(defect.claims.joined(separator: " "))  [\(counts)]  "
                  + (entry.caughtBy.first.map { "by \($0)" } ?? entry.why ?? "")))
        }
      }
      console.clearLive()
      var failure: (any Error)?
      var entries: [DefectCatalogue.Entry] = []
      let wrote = progress.writeOnce { e in
        entries = e
        failure = write(e, complete, interruption.signal?.name)
      }
      guard wrote else {
        // The watchdog is writing the catalogue and ends the process.
        while true { Thread.sleep(forTimeInterval: 1) }
      }
      if let failure {
        printError("error: cannot write \(SafeText.escape(file.path)): \(describe(failure))")
        throw Exit.badInput
      }
      let caught = entries.filter { $0.outcome == .caught }.count
      console.say(
        "catch rate: \(caught) of \(defects.count) defects"
          + (complete ? "" : " (interrupted after \(entries.count); the catalogue is marked incomplete)")
          + " — \(SafeText.escape(file.path))")
      if !complete || caught < defects.count { throw Exit.failed }
    }
  }

  struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the JSON Schema of the scenario format, or of the adapter protocol's lines.",
      discussion: """
        Written from the format's declaration. To refresh the committed copies:
          \(ScenarioSchema.regenerate)
          \(AdapterProtocolSchema.regenerate)
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
      case scenario, adapter
    }

    @Argument(help: "Which schema: scenario (kensho-scenario/1) or adapter (kensho-adapter/1, one line).")
    var format: Format = .scenario

    func run() throws {
      switch format {
      case .scenario: print(ScenarioSchema.text, terminator: "")
      case .adapter: print(AdapterProtocolSchema.text, terminator: "")
      }
    }
  }
}

/// Stops a run on SIGINT, SIGTERM or SIGHUP: the first sets the flag the harness polls (so the
/// run stops and writes its reports, marked incomplete) and kills every child process; a
/// second exits at once with 128 + the signal's number.
final class Interruption: Sendable {
  struct Signal: Sendable {
    var number: Int32
    var name: String
  }

  /// How long the run may take to stop before the reports are written without it.
  static let grace: DispatchTimeInterval = .milliseconds(1_500)
  static let graceText = "1.5 s"
  static let handled: [Signal] = [
    Signal(number: SIGINT, name: "SIGINT"), Signal(number: SIGTERM, name: "SIGTERM"),
    Signal(number: SIGHUP, name: "SIGHUP"),
  ]

  private let flag = StopFlag()
  private let first = Mutex<Signal?>(nil)
  private let count = Atomic<Int>(0)
  private let onFirst: @Sendable (Signal) -> Void
  /// Set once in `init`, then only kept alive.
  nonisolated(unsafe) private let sources: [any DispatchSourceSignal]

  private init(onFirst: @escaping @Sendable (Signal) -> Void) {
    self.onFirst = onFirst
    sources = Self.handled.map { DispatchSource.makeSignalSource(signal: $0.number, queue: .global()) }
  }

  /// Installs the handlers; `onFirst` runs (on a Dispatch queue) after the first signal.
  static func install(onFirst: @escaping @Sendable (Signal) -> Void) -> Interruption {
    // The default actions would end the process before the handlers run.
    for signal in handled { ignore(signal.number) }
    let interruption = Interruption(onFirst: onFirst)
    for (signal, source) in zip(handled, interruption.sources) {
      source.setEventHandler { [interruption] in interruption.received(signal) }
      source.resume()
    }
    return interruption
  }

  private func received(_ signal: Signal) {
    let n = count.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
    ChildProcesses.killAll()
    guard n == 1 else {
      fflush(nil)
      _exit(128 + signal.number)
    }
    first.withLock { $0 = signal }
    flag.set()
    onFirst(signal)
  }

  var happened: Bool { flag.value }
  var signal: Signal? { first.withLock { $0 } }
  /// The harness's cancellation poll.
  var cancelled: @Sendable () -> Bool {
    let flag = self.flag
    return { flag.value }
  }

  /// The result of the scenario that was running when the run had to stop without it.
  static func unfinished(_ scenario: Scenario, seed: UInt64?, signal: Signal) -> ScenarioResult {
    let why = "interrupted by \(signal.name); the run did not stop within \(graceText)"
    return ScenarioResult(
      name: scenario.name, file: scenario.file, description: scenario.description, seed: seed ?? scenario.seed,
      timeMode: scenario.time.mode.rawValue, verdict: .error,
      checks: [
        CheckResult(
          name: "completion", rule: "HARNESS", level: .harness, verdict: .error,
          expected: "the run to stop within \(graceText) of \(signal.name)", observed: why)
      ], metrics: Metrics(), samples: [], error: why)
  }
}

/// Sets `number`'s disposition to SIG_IGN.
private func ignore(_ number: Int32) {
  signal(number, SIG_IGN)
}

final class StopFlag: Sendable {
  private let state = Atomic<Bool>(false)
  func set() { state.store(true, ordering: .relaxed) }
  var value: Bool { state.load(ordering: .relaxed) }
}

/// The results of a run so far, and the one place its reports are written from: the run at its
/// end, or the watchdog of an interrupted run that did not stop in time, whichever comes first.
final class RunRecorder: Sendable {
  private struct State {
    var results: [ScenarioResult] = []
    var current: Scenario?
    var written = false
  }

  private let state = Mutex(State())

  func begin(_ scenario: Scenario) { state.withLock { $0.current = scenario } }

  func finish(_ result: ScenarioResult) {
    state.withLock { s in
      s.results.append(result)
      s.current = nil
    }
  }

  /// Runs `write` with the results and the unfinished scenario, unless the reports were already
  /// written; returns whether it ran. The other caller waits until it is done.
  func writeOnce(_ write: ([ScenarioResult], Scenario?) -> Void) -> Bool {
    state.withLock { s in
      guard !s.written else { return false }
      s.written = true
      write(s.results, s.current)
      return true
    }
  }
}

/// The processes this one started, and theirs.
enum ChildProcesses {
  /// Kills (SIGKILL) every descendant of this process, and the process group of each that leads
  /// its own, so that no implementation outlives an interrupted run.
  static func killAll() {
    // Every descendant, found in /proc: this also covers the adapter process groups the harness
    // started (`AdapterProcess.killAll()` is not called here: it takes locks that a stopped run
    // may hold, and a signal handler must not wait on them).
    #if os(Linux)
      let me = getpid()
      let myGroup = getpgrp()
      var parent: [pid_t: pid_t] = [:]
      var group: [pid_t: pid_t] = [:]
      for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = pid_t(entry),
          let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
        else { continue }
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let ppid = pid_t(fields[1]), let pgrp = pid_t(fields[2]) else { continue }
        parent[pid] = ppid
        group[pid] = pgrp
      }
      var descendants: Set<pid_t> = []
      var frontier = [me]
      while let next = frontier.popLast() {
        for (pid, ppid) in parent where ppid == next && descendants.insert(pid).inserted { frontier.append(pid) }
      }
      for pid in descendants {
        if let pgrp = group[pid], pgrp == pid, pgrp != myGroup { killpg(pgrp, SIGKILL) }
        kill(pid, SIGKILL)
      }
    #endif
  }
}
