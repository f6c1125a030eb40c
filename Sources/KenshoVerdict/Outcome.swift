import KenshoProtocol

/// The verdict of a check, a rule or a scenario. The same words are used by the console, the
/// JSON, HTML and JUnit reports and the conformance matrix (``label``).
public enum Verdict: String, Sendable, Hashable, Codable, Comparable, CaseIterable {
  /// The situation the rule speaks of happened, and the implementation kept the rule.
  case pass
  /// The situation the rule speaks of never happened in this run: nothing was proved.
  case untested
  /// The implementation lacks a capability this needs.
  case unsupported
  /// A SHOULD rule was broken: conforms, with a warning.
  case nonStrict = "non_strict"
  /// A MUST rule or a threshold was broken.
  case fail
  /// The scenario could not be run to the end (deadline, harness or adapter failure).
  case error

  private var severity: Int {
    switch self {
    case .pass: 0
    case .untested: 1
    case .unsupported: 2
    case .nonStrict: 3
    case .fail: 4
    case .error: 5
    }
  }

  public static func < (a: Verdict, b: Verdict) -> Bool { a.severity < b.severity }

  /// Whether a run with this verdict counts as passing (exit code 0).
  public var isSuccess: Bool { self <= .nonStrict }

  /// The word shown to people: `OK`, `UNTESTED`, `UNSUPPORTED`, `NON-STRICT`, `FAILED`, `ERROR`.
  public var label: String {
    switch self {
    case .pass: "OK"
    case .untested: "UNTESTED"
    case .unsupported: "UNSUPPORTED"
    case .nonStrict: "NON-STRICT"
    case .fail: "FAILED"
    case .error: "ERROR"
    }
  }
}

/// How much a check's failure weighs.
public enum CheckLevel: String, Sendable, Hashable, Codable {
  /// A MUST rule: a failure fails the scenario.
  case must = "MUST"
  /// A SHOULD rule: a failure is graded non-strict.
  case should = "SHOULD"
  /// A performance threshold of the scenario.
  case perf = "PERF"
  /// The harness itself (completion, adapter): an error, not a rule.
  case harness = "HARNESS"

  public init(rule: String) {
    switch KSPRule.named(rule)?.level {
    case .must?: self = .must
    case .should?: self = .should
    case nil: self = rule == "PERF" ? .perf : .harness
    }
  }
}

/// The first place where a check saw its rule broken: which stream, which message, when.
public struct Counterexample: Sendable, Hashable, Codable {
  /// Index of the stream in the run (the order streams were opened), when one is involved.
  public var stream: Int?
  public var streamId: String?
  /// Index of the offending message in the history's wire log, when one is involved.
  public var message: Int?
  /// Scenario time, in milliseconds.
  public var atMs: Double?
  /// What happened, in a sentence.
  public var text: String

  public init(stream: Int? = nil, streamId: String? = nil, message: Int? = nil, atMs: Double? = nil, text: String) {
    self.stream = stream
    self.streamId = streamId
    self.message = message
    self.atMs = atMs
    self.text = text
  }
}

/// The outcome of one expectation of a scenario.
public struct CheckResult: Sendable, Hashable, Codable {
  /// The check's name as in the scenario file (`ordered_delivery`, `latency_p99_us`, ...).
  public var name: String
  /// The KSP rule id it decides, `PERF` for a performance threshold, `HARNESS` or `ADAPTER`.
  public var rule: String
  public var level: CheckLevel
  public var verdict: Verdict
  public var expected: String
  public var observed: String
  /// Why it failed, was untested or unsupported.
  public var detail: String?
  /// The first counterexample, when it failed.
  public var counterexample: Counterexample?

  public init(
    name: String, rule: String, level: CheckLevel, verdict: Verdict, expected: String, observed: String,
    detail: String? = nil, counterexample: Counterexample? = nil
  ) {
    self.name = name
    self.rule = rule
    self.level = level
    self.verdict = verdict
    self.expected = expected
    self.observed = observed
    self.detail = detail ?? counterexample?.text
    self.counterexample = counterexample
  }
}

/// A rule's grade in one run: decided only by the checks that decide that rule.
public struct RuleGrade: Sendable, Hashable, Codable {
  public var rule: String
  public var verdict: Verdict
  /// The checks that decided it, as `scenario/check`.
  public var evidence: [String]

  public init(rule: String, verdict: Verdict, evidence: [String]) {
    self.rule = rule
    self.verdict = verdict
    self.evidence = evidence
  }

  /// Grades every rule of KSP/1 from check results: FAILED when any deciding check failed,
  /// else NON-STRICT, else OK when one passed, else ERROR or UNSUPPORTED; a rule no check
  /// decided, or whose situation never occurred, is UNTESTED.
  public static func grade(_ checks: [(scenario: String, check: CheckResult)]) -> [RuleGrade] {
    var byRule: [String: [(String, CheckResult)]] = [:]
    for (scenario, check) in checks where KSPRule.named(check.rule) != nil {
      byRule[check.rule, default: []].append((scenario, check))
    }
    return KSPRule.all.map { rule in
      let deciding = byRule[rule.id] ?? []
      let verdicts = Set(deciding.map(\.1.verdict))
      // A broken rule anywhere is broken; otherwise what was proved, before what was not.
      let order: [Verdict] = [.fail, .nonStrict, .pass, .error, .unsupported]
      let verdict = order.first { verdicts.contains($0) } ?? .untested
      return RuleGrade(rule: rule.id, verdict: verdict, evidence: deciding.map { "\($0.0)/\($0.1.name)" })
    }
  }
}

/// Something a report points out even when no check fails.
public struct Finding: Sendable, Hashable, Codable, CustomStringConvertible {
  public enum Kind: String, Sendable, Hashable, Codable {
    /// A slow consumer's inbox grew past what flow control would allow.
    case unboundedBuffering = "unbounded_buffering"
    /// Memory peaked far above the baseline during the run.
    case highPeakMemory = "high_peak_memory"
  }

  public var kind: Kind
  /// The worker concerned, when one is.
  public var worker: String?
  /// The figure behind it (messages waiting, bytes).
  public var value: Int
  public var text: String

  public init(kind: Kind, worker: String? = nil, value: Int, text: String) {
    self.kind = kind
    self.worker = worker
    self.value = value
    self.text = text
  }

  public var description: String { text }
}
