import KenshoProtocol
public import KenshoVerdict

/// A catalogue of deliberate defects of an implementation, and whether the scenarios catch
/// each one honestly: a defect is caught only when a check FAILED (NON-STRICT for a SHOULD
/// rule) on a rule the defect claims to break, and the same check passed on the
/// implementation without the defect. UNSUPPORTED, UNTESTED and ERROR never count.
public enum DefectCatalogue {
  public struct Defect: Sendable, Hashable, Codable {
    public var name: String
    public var text: String
    /// The rules the defect claims to break, read from its text ("… (KSP-3.1, 3.2, 4.1)").
    public var claims: [String]

    public init(name: String, text: String, claims: [String]? = nil) {
      self.name = name
      self.text = text
      self.claims = claims ?? DefectCatalogue.claimedRules(in: text)
    }
  }

  public enum Outcome: String, Sendable, Hashable, Codable {
    case caught
    case missed
  }

  public struct Entry: Sendable, Hashable, Codable {
    public var defect: Defect
    public var outcome: Outcome
    /// The checks that caught it: "scenario › check (rule)".
    public var caughtBy: [String]
    /// Verdicts of the checks on claimed rules in the runs with the defect, by label.
    public var verdicts: [String: Int]
    /// Why it was missed, when it was.
    public var why: String?
  }

  /// The implementation's listing (`--list-defects`): `NAME<TAB>text` per line.
  public static func parse(listing: String) -> [Defect] {
    listing.split(separator: "\n").compactMap { line in
      let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
      guard let name = parts.first, !name.isEmpty else { return nil }
      return Defect(name: name, text: parts.count > 1 ? parts[1] : "")
    }
  }

  /// Rule ids named in a text: `KSP-3.1` and the short forms that follow it (`KSP-3.1, 3.2`).
  public static func claimedRules(in text: String) -> [String] {
    var out: [String] = []
    var rest = Substring(text)
    while let start = rest.range(of: "KSP-") {
      var tail = rest[start.upperBound...]
      while true {
        let number = tail.prefix { $0.isNumber || $0 == "." }
        let trimmed = number.hasSuffix(".") ? number.dropLast() : number
        guard trimmed.contains("."), KSPRule.named("KSP-\(trimmed)") != nil else { break }
        if !out.contains("KSP-\(trimmed)") { out.append("KSP-\(trimmed)") }
        tail = tail.dropFirst(trimmed.count)
        guard tail.hasPrefix(", ") else { break }
        tail = tail.dropFirst(2)
      }
      rest = tail
    }
    return out
  }

  /// Judges one defect from the results of the same scenarios without it (`clean`) and with it.
  public static func judge(_ defect: Defect, clean: [ScenarioResult], broken: [ScenarioResult]) -> Entry {
    let claims = Set(defect.claims)
    var caughtBy: [String] = []
    var verdicts: [String: Int] = [:]
    for run in broken {
      guard let baseline = clean.first(where: { $0.name == run.name }) else { continue }
      var seen: [String: Int] = [:]
      for check in run.checks {
        let key = "\(check.name)|\(check.rule)"
        let ordinal = seen[key, default: 0]
        seen[key] = ordinal + 1
        guard claims.contains(check.rule) else { continue }
        verdicts[check.verdict.label, default: 0] += 1
        let broke = check.verdict == .fail || (check.verdict == .nonStrict && check.level == .should)
        let same = baseline.checks.filter { $0.name == check.name && $0.rule == check.rule }
        guard broke, ordinal < same.count, same[ordinal].verdict == .pass else { continue }
        caughtBy.append("\(run.name) › \(check.name) (\(check.rule))")
      }
    }
    var why: String?
    if caughtBy.isEmpty {
      why =
        claims.isEmpty
        ? "the defect names no KSP rule it breaks"
        : "no check on \(claims.sorted().joined(separator: ", ")) failed where it passed without the defect"
    }
    return Entry(
      defect: defect, outcome: caughtBy.isEmpty ? .missed : .caught, caughtBy: caughtBy, verdicts: verdicts, why: why)
  }

  /// The catalogue as JSON (`kensho-catalogue/1`), with the catch rate and whether it is complete:
  /// an interrupted catalogue has the entries judged so far, `complete: false`, how many defects
  /// the implementation `listed`, and the signal that stopped it.
  public static func json(
    implementation: String, entries: [Entry], complete: Bool, listed: Int? = nil, interruptedBy: String? = nil
  ) throws -> [UInt8] {
    let caught = entries.filter { $0.outcome == .caught }.count
    let value: JSONValue = .object([
      "format": "kensho-catalogue/1", "implementation": .string(implementation), "complete": .bool(complete),
      "listed": .int(Int64(listed ?? entries.count)), "interruptedBy": interruptedBy.map { .string($0) } ?? .null,
      "caught": .int(Int64(caught)), "defects": .int(Int64(entries.count)),
      "catchRate": entries.isEmpty ? .null : .double(Double(caught) / Double(entries.count)),
      "entries": .array(
        entries.map { e in
          .object([
            "defect": .string(e.defect.name), "text": .string(e.defect.text),
            "claims": .array(e.defect.claims.map { .string($0) }), "outcome": .string(e.outcome.rawValue),
            "caughtBy": .array(e.caughtBy.map { .string($0) }),
            "verdicts": .object(e.verdicts.mapValues { .int(Int64($0)) }),
            "why": e.why.map { .string($0) } ?? .null,
          ])
        }),
    ])
    return Array(try KenshoCodec.encode(value))
  }
}
