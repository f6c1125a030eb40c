import ArgumentParser
import Foundation
@_spi(Testing) import KenshoHarness
import KenshoMemory
import KenshoProtocol
import KenshoReport
import KenshoScenario
import KenshoVerdict
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Exit codes: 0 all passed, 1 a scenario failed, 2 bad input or usage.
enum Exit {
  static let failed = ExitCode(1)
  static let badInput = ExitCode(2)
  static let regressed = ExitCode(3)
}

@main
struct KenshoBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kensho-bench",
    abstract: "Runs Kensho streaming scenarios (KSP/1) and reports a verdict per scenario and per rule.",
    discussion: """
      Exit codes: 0 every scenario passed, 1 a scenario failed, 2 bad input or usage,
      3 a metric regressed against --baseline (the scenarios themselves passed).
      Reports go to --out (default Reports/): kensho-report.json, kensho-report.html,
      kensho-junit.xml, and hgrm/*.hgrm latency histograms.
      """,
    version: KenshoVersion.current,
    subcommands: [Run.self, List.self, Validate.self, Schema.self, Matrix.self, Catalogue.self],
    defaultSubcommand: Run.self)

  /// Parses, runs, and maps usage errors to exit code 2 (ArgumentParser's own is 64).
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      let code = exitCode(for: error)
      if code == .success {
        print(fullMessage(for: error))
        Foundation.exit(0)
      }
      if error is ExitCode {
        Foundation.exit(code.rawValue)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
      Foundation.exit(code == .validationFailure ? Exit.badInput.rawValue : code.rawValue)
    }
  }
}

/// An error as a person reads it.
func describe(_ error: any Error) -> String {
  if let e = error as? DecodingError {
    switch e {
    case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
      let path = "$" + c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
      return "\(path): \(c.debugDescription)"
    @unknown default: return "\(e)"
    }
  }
  if let e = error as? ValidationError { return e.message }
  return error.localizedDescription
}

/// A kensho-report/1 JSON file, or exit 2 naming the file and the problem.
func loadReport(_ path: String) throws -> RunReport {
  do {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let report = try decoder.decode(RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    guard report.format == RunReport.format else {
      throw ValidationError("format is \"\(report.format)\", expected \"\(RunReport.format)\"")
    }
    return report
  } catch {
    FileHandle.standardError.write(
      Data("error: \(path): expected a kensho-report/1 JSON report, \(describe(error))\n".utf8))
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

/// Loads every scenario under the paths, or prints every problem and exits 2.
func loadScenarios(_ paths: [String], filter: String?) throws -> [Scenario] {
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
  if !problems.isEmpty {
    for p in problems { FileHandle.standardError.write(Data("error: \(p)\n".utf8)) }
    throw Exit.badInput
  }
  if let filter {
    scenarios = scenarios.filter { $0.name.contains(filter) || ($0.file ?? "").contains(filter) }
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
  func load() throws -> [Scenario] { try loadScenarios(paths, filter: filter) }
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

    @Flag(help: .hidden)
    var leakingReferenceForTesting = false

    var formats: Set<ReportFormat> {
      Set(format.split(separator: ",").compactMap { ReportFormat(rawValue: $0.trimmingCharacters(in: .whitespaces)) })
    }

    func validate() throws {
      guard deadline > 0 else { throw ValidationError("--deadline must be positive, got \(deadline)") }
      let names = format.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
      for name in names where ReportFormat(rawValue: name) == nil {
        throw ValidationError("--format: unknown format '\(name)'; expected json, html or junit")
      }
      guard !names.isEmpty else { throw ValidationError("--format needs at least one of json, html, junit") }
      guard maxRegression >= 0 else { throw ValidationError("--max-regression must be ≥ 0, got \(maxRegression)") }
    }

    /// The baseline report, or exit 2 naming the file and what is wrong with it.
    func loadBaseline() throws -> RunReport? {
      try baseline.map(loadReport)
    }

    func run() throws {
      let scenarios = try selection.load()
      guard !scenarios.isEmpty else {
        FileHandle.standardError.write(
          Data("error: no scenario matches \(selection.paths.joined(separator: " "))\n".utf8))
        throw Exit.badInput
      }
      let baselineReport = try loadBaseline()
      let interrupted = Interruption()
      let flag = interrupted.flag
      var options = RunOptions(measure: !noMeasure, profileDirectory: out, cancelled: { flag.value })
      options.leakingReference = leakingReferenceForTesting
      options.adapterCommand = impl
      options.adapterDeadline = .milliseconds(Int64(adapterTimeout * 1000))
      let logURL = URL(fileURLWithPath: out).appendingPathComponent("adapter-stderr.log")
      if impl != nil {
        try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try? FileHandle(forWritingTo: logURL)
        options.adapterLog = { text in log?.write(Data(text.utf8)) }
      }
      let runner = ScenarioRunner(
        seed: seed, wallDeadline: .milliseconds(Int64(deadline * 1000)), options: options)
      let started = Date()
      let interactive = isatty(STDOUT_FILENO) != 0
      var results: [ScenarioResult] = []
      for (i, scenario) in scenarios.enumerated() {
        if interrupted.happened { break }
        if interactive {
          print("[\(i + 1)/\(scenarios.count)] \(scenario.name) …", terminator: "\r")
          fflush(nil)
        }
        let result = runner.run(scenario)
        results.append(result)
        print(line(result) + (interactive ? "\u{1B}[K" : ""))
        fflush(nil)
      }
      let complete = results.count == scenarios.count && !interrupted.happened
      var report = RunReport(
        results: results,
        metadata: RunReport.Metadata(
          implementation: impl.map { "\(ScenarioRunner.describeAdapter($0)) (\($0))" } ?? "reference (in process)",
          seed: seed, startedAt: started, finishedAt: Date(),
          arguments: CommandLine.arguments, jemalloc: Jemalloc.version),
        complete: complete)
      if let baselineReport {
        let limits = Dictionary(scenarios.map { ($0.name, $0.regressionLimits) }, uniquingKeysWith: { a, _ in a })
        report.regressions = BaselineComparison.regressions(
          current: results, baseline: baselineReport, defaultLimit: maxRegression, limits: limits)
      }
      let folder = URL(fileURLWithPath: out)
      do {
        try ReportWriter.write(report, formats: formats, to: folder)
      } catch {
        FileHandle.standardError.write(
          Data("error: cannot write the reports to \(folder.path): \(describe(error))\n".utf8))
        throw Exit.badInput
      }
      let s = report.summary
      print(
        "\(s.scenarios) scenarios: \(s.passed) passed, \(s.failed) failed, \(s.errors) errors, "
          + "\(s.nonStrict) non-strict, \(s.unsupported) unsupported, \(s.untested) untested\(complete ? "" : " (interrupted)") — reports in \(folder.path)"
      )
      for r in report.regressions ?? [] {
        print("REGRESSION \(r.scenario) \(r.metric): baseline \(r.baseline), now \(r.current) (allowed \(r.allowed))")
      }
      if !complete || !s.verdict.isSuccess { throw Exit.failed }
      if !(report.regressions ?? []).isEmpty { throw Exit.regressed }
    }

    func line(_ r: ScenarioResult) -> String {
      let tag = r.verdict.label.padding(toLength: 11, withPad: " ", startingAt: 0)
      let passed = r.checks.filter { $0.verdict == .pass }.count
      var text =
        "\(tag) \(r.name)  \(passed)/\(r.checks.count) checks  \(String(format: "%.2f", r.metrics.wallSeconds)) s"
      if let profile = r.heapProfile { text += "\n      heap profile: \(profile)" }
      for finding in r.findings { text += "\n      finding: \(finding)" }
      for c in r.checks where c.verdict != .pass {
        text += "\n      \(c.verdict.label) \(c.rule) \(c.name): expected \(c.expected); observed \(c.observed)"
        if let d = c.detail { text += "\n        \(d)" }
      }
      return text
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List scenarios with the rules they check.")

    @OptionGroup var selection: ScenarioSelection

    func run() throws {
      for s in try selection.load() {
        print("\(s.name)  [\(s.rules.joined(separator: " "))]  \(s.file ?? "")")
        if !s.description.isEmpty { print("    \(s.description)") }
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
        let grades = Dictionary(grouping: c.report.rules, by: \.grade).mapValues(\.count)
        print(
          "\(c.implementation): "
            + grades.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
      }
      print("matrix in \(folder.appendingPathComponent("kensho-matrix.html").path)")
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

    func run() throws {
      let scenarios = try selection.load()
      let defects = DefectCatalogue.parse(listing: try listDefects(impl))
      guard !defects.isEmpty else {
        FileHandle.standardError.write(Data("error: \(impl) --list-defects listed no defect\n".utf8))
        throw Exit.badInput
      }
      let interruption = Interruption()
      let stop = interruption.flag
      func runAll(_ command: String, _ label: String) -> [ScenarioResult]? {
        var options = RunOptions(cancelled: { stop.value })
        options.adapterCommand = command
        let runner = ScenarioRunner(options: options)
        var results: [ScenarioResult] = []
        for (i, scenario) in scenarios.enumerated() {
          if interruption.happened { return nil }
          print("  \(label): scenario \(i + 1) of \(scenarios.count), \(scenario.name)")
          results.append(runner.run(scenario))
        }
        return results
      }
      var entries: [DefectCatalogue.Entry] = []
      var complete = false
      if let clean = runAll(impl, "without defects") {
        complete = true
        for (k, defect) in defects.enumerated() {
          guard
            let broken = runAll("\(impl) --defect \(defect.name)", "defect \(k + 1) of \(defects.count) \(defect.name)")
          else {
            complete = false
            break
          }
          let entry = DefectCatalogue.judge(defect, clean: clean, broken: broken)
          entries.append(entry)
          let counts = entry.verdicts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
          print(
            "\(entry.outcome == .caught ? "CAUGHT" : "MISSED") \(defect.name)  claims \(defect.claims.joined(separator: " "))  [\(counts)]  "
              + (entry.caughtBy.first.map { "by \($0)" } ?? entry.why ?? ""))
        }
      }
      let caught = entries.filter { $0.outcome == .caught }.count
      print(
        "catch rate: \(caught) of \(defects.count) defects"
          + (complete ? "" : " (interrupted after \(entries.count); the report is marked incomplete)"))
      try AtomicFile.write(
        Data(try DefectCatalogue.json(implementation: impl, entries: entries, complete: complete)),
        to: URL(fileURLWithPath: out).appendingPathComponent("kensho-catalogue.json"))
      if !complete || caught < defects.count { throw Exit.failed }
    }

    func listDefects(_ command: String) throws -> String {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments = command.split(separator: " ").map(String.init) + ["--list-defects"]
      let pipe = Pipe()
      process.standardOutput = pipe
      do {
        try process.run()
      } catch {
        FileHandle.standardError.write(Data("error: cannot start \(command): \(error.localizedDescription)\n".utf8))
        throw Exit.badInput
      }
      let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      process.waitUntilExit()
      return text
    }
  }

  struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the JSON Schema of the scenario format.")

    func run() throws {
      guard let text = ScenarioSchema.text else {
        FileHandle.standardError.write(Data("error: the schema resource is missing from this build\n".utf8))
        throw Exit.failed
      }
      print(text)
    }
  }
}

/// Notes Ctrl-C, so that the run stops after the current scenario and still writes a report,
/// marked incomplete.
final class Interruption {
  private let source: any DispatchSourceSignal
  let flag = StopFlag()

  init() {
    signal(SIGINT, SIG_IGN)
    source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    let flag = self.flag
    source.setEventHandler { flag.set() }
    source.resume()
  }

  var happened: Bool { flag.value }
}

final class StopFlag: Sendable {
  private let state = Atomic<Bool>(false)
  func set() { state.store(true, ordering: .relaxed) }
  var value: Bool { state.load(ordering: .relaxed) }
}
