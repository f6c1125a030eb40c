public import Foundation
import KenshoProtocol

/// One problem with a scenario file: where, what was found, what was expected.
public struct ScenarioProblem: Error, Sendable, Hashable, CustomStringConvertible {
  public var file: String
  /// JSON path, e.g. `$.agents[1].methods.numbers.chunks`.
  public var path: String
  public var expected: String
  public var found: String

  public init(file: String, path: String, expected: String, found: String) {
    self.file = file
    self.path = path
    self.expected = expected
    self.found = found
  }

  public var description: String { "\(file): \(path): expected \(expected), found \(found)" }
}

/// A scenario file that could not be loaded, with every problem found in it.
public struct ScenarioLoadError: Error, Sendable, CustomStringConvertible {
  public var problems: [ScenarioProblem]
  public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Reads scenario files: JSON text → validated ``Scenario``, or every problem at once.
public enum ScenarioLoader {
  /// Loads one file.
  public static func load(file path: String) throws(ScenarioLoadError) -> Scenario {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw ScenarioLoadError(problems: [
        ScenarioProblem(file: path, path: "$", expected: "a readable file", found: "\(error.localizedDescription)")
      ])
    }
    return try load(data: data, file: path)
  }

  /// Loads a scenario from JSON text; `file` names it in problems.
  public static func load(data: Data, file: String) throws(ScenarioLoadError) -> Scenario {
    let json: JSONValue
    switch KenshoCodec.parse(data) {
    case .success(let value): json = value
    case .failure(let rejection):
      throw ScenarioLoadError(problems: [
        ScenarioProblem(file: file, path: "$", expected: "valid JSON", found: rejection.found)
      ])
    }
    let reader = Reader(file: file)
    let scenario = reader.scenario(json)
    if let scenario, reader.problems.isEmpty { return scenario }
    throw ScenarioLoadError(problems: reader.problems)
  }

  /// The scenario files under `paths` (files as given, folders searched recursively for
  /// `.json`), sorted; a path that does not exist is a problem.
  public static func files(in paths: [String]) throws(ScenarioLoadError) -> [String] {
    var files: [String] = []
    var problems: [ScenarioProblem] = []
    let fm = FileManager.default
    for path in paths {
      var isDirectory: ObjCBool = false
      guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
        problems.append(ScenarioProblem(file: path, path: "$", expected: "a scenario file or folder", found: "nothing"))
        continue
      }
      if !isDirectory.boolValue {
        files.append(path)
        continue
      }
      let found = (fm.enumerator(atPath: path)?.compactMap { $0 as? String } ?? [])
        .filter { $0.hasSuffix(".json") }
        .map { (path as NSString).appendingPathComponent($0) }
      files.append(contentsOf: found.sorted())
    }
    if !problems.isEmpty { throw ScenarioLoadError(problems: problems) }
    return files
  }
}

/// Walks a JSON value, collecting problems with their paths instead of stopping at the first.
final class Reader {
  let file: String
  var problems: [ScenarioProblem] = []

  init(file: String) { self.file = file }

  func problem(_ path: String, expected: String, found: String) {
    problems.append(ScenarioProblem(file: file, path: path, expected: expected, found: found))
  }

  func found(_ v: JSONValue?) -> String {
    guard let v else { return "nothing" }
    switch v {
    case .string(let s): return "\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
    case .int(let i): return String(i)
    case .double(let d): return String(d)
    case .bool(let b): return String(b)
    case .null: return "null"
    default: return "an \(v.typeName)"
    }
  }

  /// The object at `path`, reporting members not in `allowed`.
  func object(_ v: JSONValue?, _ path: String, allowed: Set<String>) -> [String: JSONValue]? {
    guard case .object(let o)? = v else {
      problem(path, expected: "an object", found: found(v))
      return nil
    }
    for key in o.keys.sorted() where !allowed.contains(key) {
      problem(
        "\(path).\(key)", expected: "one of the members \(allowed.sorted().joined(separator: ", "))",
        found: "an unknown member")
    }
    return o
  }

  /// Reports members of `o` that the variant `kind` does not take.
  func onlyMembers(_ o: [String: JSONValue], _ allowed: Set<String>, _ path: String, kind: String) {
    for key in o.keys.sorted() where !allowed.contains(key) {
      problem(
        "\(path).\(key)", expected: "only \(allowed.sorted().joined(separator: ", ")) with kind \"\(kind)\"",
        found: "an unknown member")
    }
  }

  func string(_ o: [String: JSONValue], _ key: String, _ path: String, required: Bool = false) -> String? {
    guard let v = o[key] else {
      if required { problem("\(path).\(key)", expected: "a string", found: "nothing") }
      return nil
    }
    guard case .string(let s) = v else {
      problem("\(path).\(key)", expected: "a string", found: found(v))
      return nil
    }
    return s
  }

  func number(_ o: [String: JSONValue], _ key: String, _ path: String, min: Double? = nil, max: Double? = nil)
    -> Double?
  {
    guard let v = o[key] else { return nil }
    guard let d = v.doubleValue, d.isFinite else {
      problem("\(path).\(key)", expected: "a number", found: found(v))
      return nil
    }
    if let min, d < min {
      problem("\(path).\(key)", expected: "a number ≥ \(clean(min))", found: found(v))
      return nil
    }
    if let max, d > max {
      problem("\(path).\(key)", expected: "a number ≤ \(clean(max))", found: found(v))
      return nil
    }
    return d
  }

  func integer(_ o: [String: JSONValue], _ key: String, _ path: String, min: Int = 0, max: Int = Int.max) -> Int? {
    guard let v = o[key] else { return nil }
    guard let i = v.intValue, let n = Int(exactly: i), n >= min, n <= max else {
      let range = max == Int.max ? "an integer ≥ \(min)" : "an integer from \(min) to \(max)"
      problem("\(path).\(key)", expected: range, found: found(v))
      return nil
    }
    return n
  }

  func bool(_ o: [String: JSONValue], _ key: String, _ path: String) -> Bool? {
    guard let v = o[key] else { return nil }
    guard case .bool(let b) = v else {
      problem("\(path).\(key)", expected: "true or false", found: found(v))
      return nil
    }
    return b
  }

  func array(_ o: [String: JSONValue], _ key: String, _ path: String, required: Bool = false) -> [JSONValue]? {
    guard let v = o[key] else {
      if required { problem("\(path).\(key)", expected: "an array", found: "nothing") }
      return nil
    }
    guard case .array(let a) = v else {
      problem("\(path).\(key)", expected: "an array", found: found(v))
      return nil
    }
    return a
  }

  func clean(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

  // MARK: The format

  func scenario(_ json: JSONValue) -> Scenario? {
    let top: Set = [
      "$schema", "format", "name", "description", "seed", "time", "agents", "workload", "expect", "rules", "regression",
      "faults", "actions",
    ]
    guard let o = object(json, "$", allowed: top) else { return nil }
    let format = string(o, "format", "$", required: true)
    if let format, format != Scenario.format {
      problem("$.format", expected: "\"\(Scenario.format)\"", found: "\"\(format)\"")
    }
    let name = string(o, "name", "$", required: true) ?? ""
    if o["name"] != nil && name.isEmpty { problem("$.name", expected: "a non-empty name", found: "\"\"") }
    let description = string(o, "description", "$") ?? ""
    let seed = integer(o, "seed", "$").map { UInt64($0) } ?? 1
    let time = o["time"].map { timeSettings($0, "$.time") } ?? TimeSettings()
    let agents = (array(o, "agents", "$", required: true) ?? []).enumerated().compactMap { i, v in
      agent(v, "$.agents[\(i)]")
    }
    if o["agents"]?.arrayValue?.isEmpty == true {
      problem("$.agents", expected: "at least one agent", found: "an empty array")
    }
    let workload = (array(o, "workload", "$", required: true) ?? []).enumerated().compactMap { i, v in
      group(v, "$.workload[\(i)]")
    }
    let expect = (array(o, "expect", "$", required: true) ?? []).enumerated().compactMap { i, v in
      expectation(v, "$.expect[\(i)]")
    }
    for key in ["workload", "expect"] where o[key]?.arrayValue?.isEmpty == true {
      problem(
        "$.\(key)", expected: key == "workload" ? "at least one workload group" : "at least one expectation",
        found: "an empty array")
    }
    if let rules = array(o, "rules", "$") {
      for (i, r) in rules.enumerated() where r.stringValue.flatMap(KSPRule.named) == nil {
        problem("$.rules[\(i)]", expected: "a KSP rule id such as \"KSP-3.2\"", found: found(r))
      }
    }
    let scenario = Scenario(
      name: name, description: description, seed: seed, time: time ?? TimeSettings(), agents: agents,
      workload: workload, expect: expect, file: file)
    var result = scenario
    if let r = o["regression"], let ro = object(r, "$.regression", allowed: Set(Metric.allCases.map(\.rawValue))) {
      for key in ro.keys.sorted() {
        if let metric = Metric(rawValue: key), let limit = number(ro, key, "$.regression", min: 0) {
          result.regressionLimits[metric] = limit
        }
      }
    }
    let faults = (array(o, "faults", "$") ?? []).enumerated().compactMap { i, v in
      fault(v, "$.faults[\(i)]").map { (i, $0) }
    }
    result.faults = faults.map(\.1)
    for (i, a) in (array(o, "actions", "$") ?? []).enumerated() {
      let path = "$.actions[\(i)]"
      guard let ao = object(a, path, allowed: ["atMs", "dispose"]) else { continue }
      guard let agent = string(ao, "dispose", path, required: true) else { continue }
      if !result.agents.contains(where: { $0.name == agent }) {
        problem("\(path).dispose", expected: "the name of an agent in $.agents", found: "\"\(agent)\"")
      }
      result.actions.append(Action(atMs: number(ao, "atMs", path, min: 0) ?? 0, kind: .dispose(agent)))
    }
    for (i, f) in faults {
      var named = [f.between?.0, f.between?.1].compactMap { $0 }
      if case .forge(_, let from?, _) = f.kind { named.append(from) }
      for name in named where !result.agents.contains(where: { $0.name == name }) {
        problem("$.faults[\(i)].between", expected: "names of agents in $.agents", found: "\"\(name)\"")
      }
    }
    crossCheck(result, o)
    return result
  }

  func timeSettings(_ v: JSONValue, _ path: String) -> TimeSettings? {
    let allowed: Set = ["mode", "streamTimeoutMs", "sweepIntervalMs", "deadlineMs", "sampleEveryMs"]
    guard let o = object(v, path, allowed: allowed) else { return nil }
    var t = TimeSettings()
    if let mode = string(o, "mode", path) {
      if let m = TimeSettings.Mode(rawValue: mode) {
        t.mode = m
      } else {
        problem("\(path).mode", expected: "\"virtual\" or \"real\"", found: "\"\(mode)\"")
      }
    }
    t.streamTimeoutMs = number(o, "streamTimeoutMs", path, min: 0)
    t.sweepIntervalMs = number(o, "sweepIntervalMs", path, min: 1)
    t.deadlineMs = number(o, "deadlineMs", path, min: 1) ?? t.deadlineMs
    t.sampleEveryMs = number(o, "sampleEveryMs", path, min: 1) ?? t.sampleEveryMs
    return t
  }

  func agent(_ v: JSONValue, _ path: String) -> AgentSpec? {
    guard let o = object(v, path, allowed: ["name", "count", "methods", "processingMs"]) else { return nil }
    guard let name = string(o, "name", path, required: true) else { return nil }
    if !Envelope.isValidWorkerName(name) {
      problem("\(path).name", expected: "a worker name ^[A-Za-z][A-Za-z0-9_-]{0,63}$", found: "\"\(name)\"")
    }
    let count = integer(o, "count", path, min: 1, max: 100_000) ?? 1
    if count > 1 && !Envelope.isValidWorkerName("\(name)-\(count - 1)") {
      problem("\(path).name", expected: "a name short enough for \"\(name)-\(count - 1)\"", found: "\"\(name)\"")
    }
    var methods: [String: ProducerBehaviour] = [:]
    if let m = o["methods"] {
      guard case .object(let mo) = m else {
        problem("\(path).methods", expected: "an object of stream methods", found: found(m))
        return nil
      }
      for (method, spec) in mo.sorted(by: { $0.key < $1.key }) {
        if let b = behaviour(spec, "\(path).methods.\(method)") { methods[method] = b }
      }
    }
    return AgentSpec(
      name: name, count: count, methods: methods, processingMs: number(o, "processingMs", path, min: 0) ?? 0)
  }

  func behaviour(_ v: JSONValue, _ path: String) -> ProducerBehaviour? {
    guard let o = object(v, path, allowed: ["chunks", "content", "intervalMs", "finish", "emitAfterFinish"]) else {
      return nil
    }
    let chunks = integer(o, "chunks", path, min: 0) ?? 0
    if o["chunks"] == nil { problem("\(path).chunks", expected: "an integer ≥ 0", found: "nothing") }
    let content = o["content"].map { chunkContent($0, "\(path).content") } ?? .sequence
    let interval = number(o, "intervalMs", path, min: 0) ?? 0
    let finish = o["finish"].map { finishSpec($0, "\(path).finish") } ?? .end(nil)
    guard let content, let finish else { return nil }
    var behaviour = ProducerBehaviour(chunks: chunks, content: content, intervalMs: interval, finish: finish)
    behaviour.emitAfterFinish = bool(o, "emitAfterFinish", path) ?? false
    return behaviour
  }

  func chunkContent(_ v: JSONValue, _ path: String) -> ChunkContent? {
    guard let o = object(v, path, allowed: ["kind", "value", "values", "size"]) else { return nil }
    let kinds = "\"sequence\", \"json\", \"values\", \"text\" or \"binary\""
    let kind = string(o, "kind", path, required: true)
    let members: [String: Set<String>] = [
      "sequence": ["kind"], "json": ["kind", "value"], "values": ["kind", "values"], "text": ["kind", "size"],
      "binary": ["kind", "size"],
    ]
    if let kind, let allowed = members[kind] { onlyMembers(o, allowed, path, kind: kind) }
    switch kind {
    case "sequence"?: return .sequence
    case "json"?:
      guard let value = o["value"] else {
        problem("\(path).value", expected: "the JSON value of every chunk", found: "nothing")
        return nil
      }
      return .json(value)
    case "values"?:
      guard let values = array(o, "values", path, required: true) else { return nil }
      guard !values.isEmpty else {
        problem("\(path).values", expected: "a non-empty array", found: "an empty array")
        return nil
      }
      return .values(values)
    case "text"?:
      guard let size = integer(o, "size", path, min: 0, max: 64 << 20) else {
        if o["size"] == nil { problem("\(path).size", expected: "a size in characters", found: "nothing") }
        return nil
      }
      return .text(size: size)
    case "binary"?:
      guard let size = integer(o, "size", path, min: 6, max: 64 << 20) else {
        if o["size"] == nil { problem("\(path).size", expected: "a size in bytes (≥ 6)", found: "nothing") }
        return nil
      }
      return .binary(size: size)
    case let other?:
      problem("\(path).kind", expected: kinds, found: "\"\(other)\"")
      return nil
    case nil:
      return nil
    }
  }

  func finishSpec(_ v: JSONValue, _ path: String) -> Finish? {
    guard let o = object(v, path, allowed: ["kind", "summary", "error", "announced"]) else { return nil }
    let kind = string(o, "kind", path, required: true)
    let members: [String: Set<String>] = [
      "end": ["kind", "summary"], "error": ["kind", "error"], "throw": ["kind", "error"], "hang": ["kind"],
      "crash": ["kind", "announced"],
    ]
    if let kind, let allowed = members[kind] { onlyMembers(o, allowed, path, kind: kind) }
    switch kind {
    case "end"?: return .end(o["summary"])
    case "error"?: return serializedError(o, path).map { .error($0) }
    case "throw"?: return serializedError(o, path).map { .throwError($0) }
    case "hang"?: return .hang
    case "crash"?: return .crash(announced: bool(o, "announced", path) ?? false)
    case let other?:
      problem("\(path).kind", expected: "\"end\", \"error\", \"throw\", \"hang\" or \"crash\"", found: "\"\(other)\"")
      return nil
    case nil: return nil
    }
  }

  func serializedError(_ o: [String: JSONValue], _ path: String) -> SerializedError? {
    guard let e = o["error"] else {
      problem("\(path).error", expected: "an error {name, message, code?}", found: "nothing")
      return nil
    }
    guard let eo = object(e, "\(path).error", allowed: ["name", "message", "code", "stack"]) else { return nil }
    let ep = "\(path).error"
    guard let name = string(eo, "name", ep, required: true), let message = string(eo, "message", ep, required: true)
    else { return nil }
    return SerializedError(name: name, message: message, code: string(eo, "code", ep), stack: string(eo, "stack", ep))
  }

  func fault(_ v: JSONValue, _ path: String) -> Fault? {
    let common: Set = ["kind", "types", "nth", "probability", "between", "fromMs", "untilMs"]
    guard let o = object(v, path, allowed: common.union(["distribution", "ms", "minMs", "maxMs", "from", "forge"]))
    else {
      return nil
    }
    let kindName = string(o, "kind", path, required: true)
    var types: Set<MessageType> = []
    for (i, t) in (array(o, "types", path) ?? []).enumerated() {
      if let type = t.stringValue.flatMap(MessageType.init(rawValue:)) {
        types.insert(type)
      } else {
        problem(
          "\(path).types[\(i)]",
          expected: "a message type (" + MessageType.allCases.map(\.rawValue).joined(separator: ", ") + ")",
          found: found(t))
      }
    }
    var between: (String, String)?
    if let b = array(o, "between", path) {
      if b.count == 2, let x = b[0].stringValue, let y = b[1].stringValue {
        between = (x, y)
      } else {
        problem("\(path).between", expected: "two agent names", found: found(o["between"]))
      }
    }
    let kind: Fault.Kind?
    switch kindName {
    case "drop"?:
      onlyMembers(o, common, path, kind: "drop")
      kind = .drop
    case "duplicate"?:
      onlyMembers(o, common, path, kind: "duplicate")
      kind = .duplicate
    case "delay"?:
      onlyMembers(o, common.union(["distribution", "ms", "minMs", "maxMs"]), path, kind: "delay")
      switch string(o, "distribution", path) ?? "constant" {
      case "constant": kind = .delay(.constant(number(o, "ms", path, min: 0) ?? 0))
      case "uniform":
        let lo = number(o, "minMs", path, min: 0) ?? 0
        let hi = number(o, "maxMs", path, min: 0) ?? lo
        if hi < lo { problem("\(path).maxMs", expected: "maxMs ≥ minMs (\(clean(lo)))", found: clean(hi)) }
        kind = .delay(.uniform(min: lo, max: max(lo, hi)))
      case "exponential": kind = .delay(.exponential(mean: number(o, "ms", path, min: 0) ?? 0))
      case let other:
        problem("\(path).distribution", expected: "\"constant\", \"uniform\" or \"exponential\"", found: "\"\(other)\"")
        kind = nil
      }
    case "forge"?:
      onlyMembers(o, common.union(["forge", "from", "ms"]), path, kind: "forge")
      let what = string(o, "forge", path, required: true)
      guard let what, let forgery = Fault.Forgery(rawValue: what) else {
        if let what {
          problem(
            "\(path).forge", expected: "one of " + Fault.Forgery.allCases.map(\.rawValue).joined(separator: ", "),
            found: "\"\(what)\"")
        }
        return nil
      }
      let from = string(o, "from", path, required: forgery == .cancel)
      if forgery == .cancel && from == nil { return nil }
      kind = .forge(forgery, from: from, afterMs: number(o, "ms", path, min: 0) ?? 0)
    case let other?:
      problem("\(path).kind", expected: "\"drop\", \"duplicate\", \"delay\" or \"forge\"", found: "\"\(other)\"")
      kind = nil
    case nil: kind = nil
    }
    guard let kind else { return nil }
    return Fault(
      kind, types: types, nth: integer(o, "nth", path, min: 0),
      probability: number(o, "probability", path, min: 0, max: 1) ?? 1,
      between: between, fromMs: number(o, "fromMs", path, min: 0), untilMs: number(o, "untilMs", path, min: 0))
  }

  func group(_ v: JSONValue, _ path: String) -> WorkloadGroup? {
    let allowed: Set = [
      "consumers", "producers", "method", "args", "streams", "concurrency", "ratePerSecond", "startMs", "timeoutMs",
      "cancelAfterChunks", "throwIn", "creditWindow", "traced",
    ]
    guard let o = object(v, path, allowed: allowed) else { return nil }
    let consumers = string(o, "consumers", path, required: true)
    let producers = string(o, "producers", path, required: true)
    let method = string(o, "method", path, required: true)
    var throwing: Set<CallbackKind> = []
    for (i, c) in (array(o, "throwIn", path) ?? []).enumerated() {
      if let kind = c.stringValue.flatMap(CallbackKind.init(rawValue:)) {
        throwing.insert(kind)
      } else {
        problem("\(path).throwIn[\(i)]", expected: "\"onChunk\", \"onEnd\" or \"onError\"", found: found(c))
      }
    }
    guard let consumers, let producers, let method else { return nil }
    var group = WorkloadGroup(
      consumers: consumers, producers: producers, method: method, args: o["args"] ?? .null,
      streams: integer(o, "streams", path, min: 1, max: 10_000_000) ?? 1,
      concurrency: integer(o, "concurrency", path, min: 1),
      ratePerSecond: number(o, "ratePerSecond", path, min: 0.001),
      startMs: number(o, "startMs", path, min: 0) ?? 0,
      timeoutMs: number(o, "timeoutMs", path, min: 0),
      cancelAfterChunks: integer(o, "cancelAfterChunks", path, min: 0),
      throwingCallbacks: throwing)
    group.creditWindow = integer(o, "creditWindow", path, min: 1, max: 1 << 30)
    group.traced = bool(o, "traced", path) ?? false
    return group
  }

  func expectation(_ v: JSONValue, _ path: String) -> Expectation? {
    guard case .object(let raw) = v else {
      problem(path, expected: "an object with \"check\" or \"metric\"", found: found(v))
      return nil
    }
    let rule = string(raw, "rule", path)
    if let rule, KSPRule.named(rule) == nil && rule != "PERF" {
      problem("\(path).rule", expected: "a KSP rule id such as \"KSP-3.2\"", found: "\"\(rule)\"")
    }
    if raw["metric"] != nil {
      guard let o = object(v, path, allowed: ["metric", "min", "max", "rule"]) else { return nil }
      guard let name = string(o, "metric", path, required: true) else { return nil }
      guard let metric = Metric(rawValue: name) else {
        problem(
          "\(path).metric", expected: "one of " + Metric.allCases.map(\.rawValue).joined(separator: ", "),
          found: "\"\(name)\"")
        return nil
      }
      let min = number(o, "min", path)
      let max = number(o, "max", path)
      if min == nil && max == nil && o["min"] == nil && o["max"] == nil {
        problem(path, expected: "\"min\" or \"max\"", found: "neither")
      }
      if let min, let max, min > max {
        problem("\(path).min", expected: "min ≤ max (\(clean(max)))", found: clean(min))
      }
      return Expectation(.metric(metric, min: min, max: max), rule: rule)
    }
    let check = string(raw, "check", path, required: true)
    let base: Set = ["check", "rule"]
    let kind: Expectation.Kind?
    switch check {
    case "ordered_delivery"?: kind = object(v, path, allowed: base).map { _ in .orderedDelivery }
    case "exactly_one_terminal"?: kind = object(v, path, allowed: base).map { _ in .exactlyOneTerminal }
    case "summary_preserved"?: kind = object(v, path, allowed: base).map { _ in .summaryPreserved }
    case "active_streams_empty"?: kind = object(v, path, allowed: base).map { _ in .activeStreamsEmpty }
    case "timeout_window"?: kind = object(v, path, allowed: base).map { _ in .timeoutWindow }
    case "wire_valid"?: kind = object(v, path, allowed: base).map { _ in .wireValid }
    case "stream_requests"?: kind = object(v, path, allowed: base).map { _ in .streamRequests }
    case "trace_propagated"?: kind = object(v, path, allowed: base).map { _ in .tracePropagated }
    case "emitter_closed"?: kind = object(v, path, allowed: base).map { _ in .emitterClosed }
    case "payload_sha256"?: kind = object(v, path, allowed: base).map { _ in .payloadDigest }
    case "malformed_dropped"?: kind = object(v, path, allowed: base).map { _ in .malformedDropped }
    case "misaddressed_ignored"?: kind = object(v, path, allowed: base).map { _ in .misaddressedIgnored }
    case "chunks_addressed"?: kind = object(v, path, allowed: base).map { _ in .chunksAddressed }
    case "cancel_stops_producer"?: kind = object(v, path, allowed: base).map { _ in .cancelStopsProducer }
    case "foreign_cancel_ignored"?: kind = object(v, path, allowed: base).map { _ in .foreignCancelIgnored }
    case "seq_delivery"?: kind = object(v, path, allowed: base).map { _ in .seqDelivery }
    case "inactive_chunks_dropped"?: kind = object(v, path, allowed: base).map { _ in .inactiveChunksDropped }
    case "handler_runs"?:
      kind = object(v, path, allowed: base.union(["perStream"])).map { o in
        .handlerRuns(integer(o, "perStream", path, min: 0) ?? 1)
      }
    case "memory_returns"?, "peak_memory"?:
      kind = object(v, path, allowed: base.union(["maxBytes"])).flatMap { o in
        guard let max = integer(o, "maxBytes", path, min: 0) else {
          if o["maxBytes"] == nil { problem("\(path).maxBytes", expected: "a number of bytes", found: "nothing") }
          return nil
        }
        return check == "memory_returns" ? .memoryReturns(maxBytes: max) : .peakMemory(maxBytes: max)
      }
    case "no_leak"?:
      kind = object(v, path, allowed: base.union(["maxBytesPerStream", "maxBytesPerChunk"])).flatMap { o in
        let perStream = number(o, "maxBytesPerStream", path, min: 0)
        let perChunk = number(o, "maxBytesPerChunk", path, min: 0)
        if o["maxBytesPerStream"] == nil && o["maxBytesPerChunk"] == nil {
          problem(path, expected: "\"maxBytesPerStream\" or \"maxBytesPerChunk\"", found: "neither")
          return nil
        }
        return .noLeak(maxBytesPerStream: perStream, maxBytesPerChunk: perChunk)
      }
    case "outcome"?:
      kind = object(v, path, allowed: base.union(["terminal", "code", "name", "message", "fraction"])).flatMap { o in
        let terminal = string(o, "terminal", path, required: true)
        guard let terminal, let t = OutcomeMatch.Terminal(rawValue: terminal) else {
          if let terminal { problem("\(path).terminal", expected: "\"end\" or \"error\"", found: "\"\(terminal)\"") }
          return nil
        }
        if t == .end {
          for key in ["code", "name", "message"] where o[key] != nil {
            problem("\(path).\(key)", expected: "no \(key) with terminal \"end\"", found: found(o[key]))
          }
        }
        return .outcome(
          OutcomeMatch(
            terminal: t, code: string(o, "code", path), name: string(o, "name", path),
            message: string(o, "message", path), fraction: number(o, "fraction", path, min: 0, max: 1) ?? 1))
      }
    case let other?:
      problem(
        "\(path).check", expected: "one of " + Expectation.Kind.checkNames.joined(separator: ", "),
        found: "\"\(other)\"")
      kind = nil
    case nil: kind = nil
    }
    if let kind, let rule, KSPRule.named(rule) != nil || rule == "PERF", !kind.decidableRules.contains(rule) {
      problem(
        "\(path).rule",
        expected: "a rule that \(kind.name) decides (" + kind.decidableRules.sorted().joined(separator: ", ") + ")",
        found: "\"\(rule)\"")
      return nil
    }
    return kind.map { Expectation($0, rule: rule) }
  }

  /// Problems that span members: agent names unique, workload names that refer to declared
  /// agents. (Methods are not checked: calling an unregistered method is a scenario of its own,
  /// KSP-2.3.)
  func crossCheck(_ s: Scenario, _ o: [String: JSONValue]) {
    var names: Set<String> = []
    for (i, a) in s.agents.enumerated() {
      for w in a.workerNames where !names.insert(w).inserted {
        problem("$.agents[\(i)].name", expected: "a name no other agent uses", found: "\"\(w)\" again")
      }
    }
    let declared = Set(s.agents.map(\.name))
    for (i, g) in s.workload.enumerated() {
      let path = "$.workload[\(i)]"
      for (key, value) in [("consumers", g.consumers), ("producers", g.producers)] where !declared.contains(value) {
        problem(
          "\(path).\(key)", expected: "the name of an agent in $.agents (\(declared.sorted().joined(separator: ", ")))",
          found: "\"\(value)\"")
      }
      if g.concurrency != nil && g.ratePerSecond != nil {
        problem(
          path, expected: "either \"concurrency\" (closed model) or \"ratePerSecond\" (open model)", found: "both")
      }
    }
  }
}
