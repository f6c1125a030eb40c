public import Foundation
import KenshoHarness
public import KenshoProtocol
public import KenshoVerdict

#if canImport(Glibc)
  import Glibc
#endif

/// The JSON report of a run (`"format": "kensho-report/1"`): metadata, a summary, the verdict
/// per rule, and every scenario with its checks and metrics.
public struct RunReport: Sendable, Codable {
  public static let format = "kensho-report/1"

  public struct Metadata: Sendable, Codable {
    public var tool = "kensho-bench"
    public var toolVersion = KenshoVersion.current
    public var implementation: String
    public var seed: UInt64?
    public var startedAt: Date
    public var finishedAt: Date
    public var arguments: [String]
    public var machine: Machine
    public var jemalloc: String?

    public init(
      implementation: String, seed: UInt64?, startedAt: Date, finishedAt: Date, arguments: [String],
      jemalloc: String?
    ) {
      self.implementation = implementation
      self.seed = seed
      self.startedAt = startedAt
      self.finishedAt = finishedAt
      self.arguments = arguments
      self.machine = Machine()
      self.jemalloc = jemalloc
    }
  }

  public struct Machine: Sendable, Codable {
    public var hostname = ProcessInfo.processInfo.hostName
    public var os = ProcessInfo.processInfo.operatingSystemVersionString
    public var cores = ProcessInfo.processInfo.activeProcessorCount
    public var memoryBytes = ProcessInfo.processInfo.physicalMemory
  }

  public struct Summary: Sendable, Codable {
    public var scenarios: Int
    public var passed: Int
    public var nonStrict: Int
    public var unsupported: Int
    /// Scenarios whose situation never occurred for some check: nothing was proved there.
    public var untested: Int
    public var failed: Int
    public var errors: Int
    public var verdict: Verdict
  }

  /// The grade of one rule over every scenario that cites it.
  public struct RuleGrade: Sendable, Codable {
    public var id: String
    public var level: KSPRule.Level
    public var text: String
    /// The rule's grade (shown to people as ``Verdict/label``).
    public var grade: Verdict
    /// The scenarios and checks behind the grade.
    public var evidence: [String]
  }

  public var format = RunReport.format
  /// False when the run was interrupted: the report covers only the scenarios listed.
  public var complete: Bool
  /// The signal that stopped the run (`SIGINT`, `SIGTERM`, `SIGHUP`), when one did.
  public var interruptedBy: String?
  public var run: Metadata
  public var summary: Summary
  public var rules: [RuleGrade]
  public var scenarios: [ScenarioResult]
  /// Regressions against `--baseline`, when one was given.
  public var regressions: [Regression]?
  /// What the comparison with `--baseline` compared and how, when one was given.
  public var baseline: BaselineSummary?
  /// How many times each scenario ran (`--repeat`); absent for one.
  public var repeats: Int?

  public init(results: [ScenarioResult], metadata: Metadata, complete: Bool) {
    self.complete = complete
    self.run = metadata
    self.scenarios = results
    let count = { (v: Verdict) in results.filter { $0.verdict == v }.count }
    summary = Summary(
      scenarios: results.count, passed: count(.pass), nonStrict: count(.nonStrict), unsupported: count(.unsupported),
      untested: count(.untested), failed: count(.fail), errors: count(.error),
      verdict: results.map(\.verdict).max() ?? .pass)
    let graded = KenshoVerdict.RuleGrade.grade(results.flatMap { r in r.checks.map { (r.name, $0) } })
    rules = zip(KSPRule.all, graded).map { rule, g in
      let evidence = results.flatMap { r in
        r.checks.filter { $0.rule == rule.id }.map { "\(r.name) › \($0.name): \($0.verdict.label)" }
      }
      return RuleGrade(
        id: rule.id, level: rule.level, text: rule.text, grade: g.verdict, evidence: evidence)
    }
  }

  /// The report as pretty-printed JSON with sorted keys.
  public func json() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    encoder.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try encoder.encode(self)
  }
}

/// kensho-bench's version.
public enum KenshoVersion {
  public static let current = "0.1.0"
}

/// Writes files so that a reader never sees half of one: a temporary file, then a rename.
public enum AtomicFile {
  public static func write(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    try data.write(to: temporary)
    // rename(2) replaces the target in one step.
    guard rename(temporary.path, url.path) == 0 else {
      let code = errno
      try? FileManager.default.removeItem(at: temporary)
      throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path, "errno": code])
    }
  }
}
