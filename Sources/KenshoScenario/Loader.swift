public import Foundation
import KenshoProtocol

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One problem with a scenario file: where, what was found, what was expected.
public struct ScenarioProblem: Error, Sendable, Hashable, CustomStringConvertible {
  public var file: String
  /// JSON path, e.g. `$.agents[1].methods.numbers.chunks`; a member whose name is not plain
  /// letters, digits, `_`, `-` or `$` is written `$.methods["odd \n name"]`.
  public var path: String
  public var expected: String
  public var found: String

  public init(file: String, path: String, expected: String, found: String) {
    self.file = file
    self.path = path
    self.expected = expected
    self.found = found
  }

  /// `file: path: expected X, found Y`, on one line whatever the file holds: control
  /// characters, escape sequences and the like are escaped (``SafeText``).
  public var description: String {
    SafeText.escape("\(file): \(path): expected \(expected), found \(found)")
  }
}

/// A scenario file that could not be loaded, with every problem found in it.
public struct ScenarioLoadError: Error, Sendable, CustomStringConvertible {
  public var problems: [ScenarioProblem]
  /// One line per problem.
  public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Reads scenario files: JSON text → validated ``Scenario``, or every problem at once.
public enum ScenarioLoader {
  /// Loads one file. It must be a regular file (a FIFO or a device would never end) of at most
  /// ``ScenarioLimits/maxFileBytes``.
  public static func load(file path: String) throws(ScenarioLoadError) -> Scenario {
    switch readRegularFile(path, maxBytes: ScenarioLimits.maxFileBytes) {
    case .success(let data): return try load(data: data, file: path)
    case .failure(let problem): throw ScenarioLoadError(problems: [problem])
    }
  }

  /// The bytes of the regular file at `path` (symbolic links followed), or why it cannot be read:
  /// it does not exist, it is a folder, a FIFO or a device (which could block forever), or it
  /// holds more than `maxBytes`. Never blocks on anything but the disk.
  public static func readRegularFile(_ path: String, maxBytes limit: Int) -> Result<Data, ScenarioProblem> {
    func problem(_ expected: String, _ found: String) -> Result<Data, ScenarioProblem> {
      .failure(ScenarioProblem(file: path, path: "$", expected: expected, found: found))
    }
    // Non-blocking, so that opening a FIFO returns at once; fstat then says what it is.
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { return problem("a readable file", String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return problem("a readable file", String(cString: strerror(errno))) }
    guard info.st_mode & S_IFMT == S_IFREG else {
      return problem("a regular file", info.st_mode & S_IFMT == S_IFDIR ? "a folder" : "a special file")
    }
    guard info.st_size <= limit else {
      return problem("a file of at most \(limit >> 20) MiB", ScenarioFootprint.bytesText(Int(clamping: info.st_size)))
    }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { return problem("a readable file", String(cString: strerror(errno))) }
      if n == 0 { return .success(data) }
      data.append(contentsOf: buffer[0..<n])
      // The file may have grown since fstat.
      guard data.count <= limit else {
        return problem("a file of at most \(limit >> 20) MiB", "more than \(limit >> 20) MiB")
      }
    }
  }

  /// Loads a scenario from JSON text; `file` names it in problems.
  public static func load(data: Data, file: String) throws(ScenarioLoadError) -> Scenario {
    let json: JSONValue
    do throws(JSONText.ParseError) {
      json = try JSONText.parse(data)
    } catch {
      // Where a person looks for it: line and column, not a byte offset.
      let (line, column) = error.position(in: data)
      throw ScenarioLoadError(problems: [
        ScenarioProblem(
          file: file, path: "line \(line), column \(column)",
          expected: "\(error.expected) (the file is not valid JSON)",
          found: error.found(in: data))
      ])
    }
    let reader = Reader(file: file)
    let scenario = reader.scenario(json)
    if let scenario, reader.problems.isEmpty { return scenario }
    throw ScenarioLoadError(problems: reader.finalProblems)
  }

  /// The scenario files under `paths` (files as given, folders searched recursively for
  /// `.json`), sorted. A path that does not exist, and a folder without a `.json` file, are
  /// problems.
  public static func files(in paths: [String]) throws(ScenarioLoadError) -> [String] {
    var files: [String] = []
    var problems: [ScenarioProblem] = []
    let fm = FileManager.default
    if paths.isEmpty {
      problems.append(ScenarioProblem(file: "", path: "$", expected: "a scenario file or folder", found: "no path"))
    }
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
      if found.isEmpty {
        problems.append(
          ScenarioProblem(
            file: path, path: "$", expected: "a folder holding scenario files (*.json)", found: "no .json file"))
      }
      files.append(contentsOf: found.sorted())
    }
    if !problems.isEmpty { throw ScenarioLoadError(problems: problems) }
    return files
  }

  /// A problem when running `scenario` would need more memory than `budget` bytes, by the
  /// estimate of ``Scenario/footprint``; `machine` says where the budget comes from.
  public static func memoryProblem(_ scenario: Scenario, budget: Int, machine: String) -> ScenarioProblem? {
    let footprint = scenario.footprint
    guard footprint.bytes > budget else { return nil }
    return ScenarioProblem(
      file: scenario.file ?? scenario.name, path: "$.workload",
      expected: "a run that fits in \(ScenarioFootprint.bytesText(budget)) (\(machine))",
      found: "an estimated \(footprint)")
  }

  /// The memory a run may use on this machine: 80 % of the physical memory, or of the control
  /// group's limit when that is lower; and a description of it.
  public static var machineMemoryBudget: (bytes: Int, description: String) {
    let physical = ProcessInfo.processInfo.physicalMemory
    var limit = physical
    var source = "physical memory"
    for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
      guard let text = try? String(contentsOfFile: file, encoding: .utf8),
        let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), value < limit
      else { continue }
      limit = value
      source = "memory limit of this control group"
    }
    let bytes = Int(clamping: limit / 10 * 8)
    return (bytes, "80 % of the \(ScenarioFootprint.bytesText(Int(clamping: limit))) \(source)")
  }
}

/// Walks a JSON value, collecting problems with their paths instead of stopping at the first.
final class Reader {
  let file: String
  var problems: [ScenarioProblem] = []
  /// Problems beyond ``ScenarioLimits/maxProblems``, counted only.
  var unlisted = 0

  init(file: String) { self.file = file }

  /// Notes a problem (the texts are made only for the problems listed).
  func problem(
    _ path: @autoclosure () -> String, expected: @autoclosure () -> String, found: @autoclosure () -> String
  ) {
    guard problems.count < ScenarioLimits.maxProblems else {
      unlisted += 1
      return
    }
    problems.append(ScenarioProblem(file: file, path: path(), expected: expected(), found: found()))
  }

  /// The problems, and a last one counting those not listed.
  var finalProblems: [ScenarioProblem] {
    guard unlisted > 0 else { return problems }
    return problems + [
      ScenarioProblem(
        file: file, path: "$", expected: "at most \(ScenarioLimits.maxProblems) problems listed",
        found: "\(unlisted) more")
    ]
  }

  /// A value as problems show it: strings quoted and escaped, numbers exactly.
  func found(_ v: JSONValue?) -> String {
    guard let v else { return "nothing" }
    switch v {
    case .string(let s): return SafeText.quoted(s)
    case .int(let i): return String(i)
    case .double(let d): return Self.format(d)
    case .bool(let b): return String(b)
    case .null: return "null"
    default: return "an \(v.typeName)"
    }
  }

  /// A number as people write it: integers without a fraction, never a trap.
  static func format(_ d: Double) -> String {
    if !d.isFinite { return d.isNaN ? "not a number" : "a number beyond ±1.8e308" }
    if d == d.rounded(), d.magnitude <= 1e18 { return String(Int64(d)) }
    return String(d)
  }

  /// The path of member `key` under `path`.
  func at(_ path: String, _ key: String) -> String { SafeText.member(path, key) }

  /// The object at `path`, reporting members not in `allowed`.
  func object(_ v: JSONValue?, _ path: String, allowed: Set<String>) -> [String: JSONValue]? {
    guard case .object(let o)? = v else {
      problem(path, expected: "an object", found: found(v))
      return nil
    }
    for key in o.keys.sorted() where !allowed.contains(key) {
      problem(
        at(path, key), expected: "one of the members \(allowed.sorted().joined(separator: ", "))",
        found: "an unknown member")
    }
    return o
  }

  /// Reports members of `o` that the variant `kind` does not take.
  func onlyMembers(_ o: [String: JSONValue], _ allowed: Set<String>, _ path: String, kind: String) {
    for key in o.keys.sorted() where !allowed.contains(key) {
      problem(
        at(path, key), expected: "only \(allowed.sorted().joined(separator: ", ")) with kind \"\(kind)\"",
        found: "an unknown member")
    }
  }

  func string(_ o: [String: JSONValue], _ key: String, _ path: String, required: Bool = false) -> String? {
    guard let v = o[key] else {
      if required { problem(at(path, key), expected: "a string", found: "nothing") }
      return nil
    }
    guard case .string(let s) = v else {
      problem(at(path, key), expected: "a string", found: found(v))
      return nil
    }
    return s
  }

  /// A number from `min` to `max`; `what` names it in problems ("a time in ms").
  func number(
    _ o: [String: JSONValue], _ key: String, _ path: String, min: Double, max: Double, what: String = "a number"
  ) -> Double? {
    guard let v = o[key] else { return nil }
    guard let d = v.doubleValue, d.isFinite, d >= min, d <= max else {
      problem(at(path, key), expected: "\(what) from \(Self.format(min)) to \(Self.format(max))", found: found(v))
      return nil
    }
    return d + 0  // -0 becomes 0
  }

  /// A time in milliseconds from `min` to ``ScenarioLimits/maxTimeMs``.
  func time(_ o: [String: JSONValue], _ key: String, _ path: String, min: Double = 0) -> Double? {
    number(o, key, path, min: min, max: ScenarioLimits.maxTimeMs, what: "a time in ms")
  }

  func integer(_ o: [String: JSONValue], _ key: String, _ path: String, min: Int = 0, max: Int) -> Int? {
    guard let v = o[key] else { return nil }
    guard let i = v.intValue, let n = Int(exactly: i), n >= min, n <= max else {
      problem(at(path, key), expected: "an integer from \(min) to \(max)", found: found(v))
      return nil
    }
    return n
  }

  func bool(_ o: [String: JSONValue], _ key: String, _ path: String) -> Bool? {
    guard let v = o[key] else { return nil }
    guard case .bool(let b) = v else {
      problem(at(path, key), expected: "true or false", found: found(v))
      return nil
    }
    return b
  }

  func array(
    _ o: [String: JSONValue], _ key: String, _ path: String, required: Bool = false, maxItems: Int = .max
  ) -> [JSONValue]? {
    guard let v = o[key] else {
      if required { problem(at(path, key), expected: "an array", found: "nothing") }
      return nil
    }
    guard case .array(let a) = v else {
      problem(at(path, key), expected: "an array", found: found(v))
      return nil
    }
    guard a.count <= maxItems else {
      problem(at(path, key), expected: "an array of at most \(maxItems) items", found: "\(a.count) items")
      return nil
    }
    return a
  }

  // MARK: The format

  func scenario(_ json: JSONValue) -> Scenario? {
    let top: Set = [
      "$schema", "format", "name", "description", "seed", "time", "agents", "workload", "expect", "rules", "regression",
      "faults", "actions",
    ]
    guard let o = object(json, "$", allowed: top) else { return nil }
    let format = string(o, "format", "$", required: true)
    if let format, format != Scenario.format {
      problem("$.format", expected: "\"\(Scenario.format)\"", found: found(.string(format)))
    }
    let name = string(o, "name", "$", required: true) ?? ""
    if o["name"] != nil && (name.isEmpty || name.count > 256) {
      problem("$.name", expected: "a name of 1 to 256 characters", found: name.isEmpty ? "\"\"" : "\(name.count)")
    }
    let description = string(o, "description", "$") ?? ""
    let seed = integer(o, "seed", "$", max: Int(Int64.max)).map { UInt64($0) } ?? 1
    let timing = o["time"].map { timeSettings($0, "$.time") } ?? TimeSettings()
    let agentItems = array(o, "agents", "$", required: true, maxItems: ScenarioLimits.maxWorkers) ?? []
    let agents = agentItems.enumerated().compactMap { i, v in
      agent(v, "$.agents[\(i)]")
    }
    if o["agents"]?.arrayValue?.isEmpty == true {
      problem("$.agents", expected: "at least one agent", found: "an empty array")
    }
    let workload = (array(o, "workload", "$", required: true, maxItems: ScenarioLimits.maxItems) ?? []).enumerated()
      .compactMap { i, v in
        group(v, "$.workload[\(i)]")
      }
    let expect = (array(o, "expect", "$", required: true, maxItems: ScenarioLimits.maxItems) ?? []).enumerated()
      .compactMap { i, v in
        expectation(v, "$.expect[\(i)]")
      }
    for key in ["workload", "expect"] where o[key]?.arrayValue?.isEmpty == true {
      problem(
        "$.\(key)", expected: key == "workload" ? "at least one workload group" : "at least one expectation",
        found: "an empty array")
    }
    if let rules = array(o, "rules", "$", maxItems: ScenarioLimits.maxItems) {
      for (i, r) in rules.enumerated() where r.stringValue.flatMap(KSPRule.named) == nil {
        problem("$.rules[\(i)]", expected: "a KSP rule id such as \"KSP-3.2\"", found: found(r))
      }
    }
    let scenario = Scenario(
      name: name, description: description, seed: seed, time: timing ?? TimeSettings(), agents: agents,
      workload: workload, expect: expect, file: file)
    var result = scenario
    if let r = o["regression"], let ro = object(r, "$.regression", allowed: Set(Metric.allCases.map(\.rawValue))) {
      for key in ro.keys.sorted() {
        if let metric = Metric(rawValue: key),
          let limit = number(ro, key, "$.regression", min: 0, max: ScenarioLimits.maxRegression, what: "a fraction")
        {
          result.regressionLimits[metric] = limit
        }
      }
    }
    let faults = (array(o, "faults", "$", maxItems: ScenarioLimits.maxFaults) ?? []).enumerated().compactMap { i, v in
      fault(v, "$.faults[\(i)]").map { (i, $0) }
    }
    result.faults = faults.map(\.1)
    let agentNames = Set(result.agents.map(\.name))
    for (i, a) in (array(o, "actions", "$", maxItems: ScenarioLimits.maxItems) ?? []).enumerated() {
      let path = "$.actions[\(i)]"
      guard let ao = object(a, path, allowed: ["atMs", "dispose"]) else { continue }
      guard let agent = string(ao, "dispose", path, required: true) else { continue }
      if !agentNames.contains(agent) {
        problem("\(path).dispose", expected: "the name of an agent in $.agents", found: found(.string(agent)))
      }
      result.actions.append(Action(atMs: time(ao, "atMs", path) ?? 0, kind: .dispose(agent)))
    }
    for (i, f) in faults {
      var named = [f.between?.0, f.between?.1].compactMap { $0 }
      if case .forge(_, let from?, _) = f.kind { named.append(from) }
      for name in named where !agentNames.contains(name) {
        problem("$.faults[\(i)].between", expected: "names of agents in $.agents", found: found(.string(name)))
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
        problem("\(path).mode", expected: "\"virtual\" or \"real\"", found: found(.string(mode)))
      }
    }
    t.streamTimeoutMs = time(o, "streamTimeoutMs", path)
    t.sweepIntervalMs = time(o, "sweepIntervalMs", path, min: 1)
    t.deadlineMs = time(o, "deadlineMs", path, min: 1) ?? t.deadlineMs
    t.sampleEveryMs = time(o, "sampleEveryMs", path, min: 1) ?? t.sampleEveryMs
    // Sampling runs until the deadline when streams hang: bound the number of samples.
    let least = t.deadlineMs / ScenarioLimits.maxSamples
    if t.sampleEveryMs < least {
      problem(
        "\(path).sampleEveryMs",
        expected:
          "at least \(Self.format(least)) ms, so that deadlineMs (\(Self.format(t.deadlineMs)) ms) holds at most "
          + "\(Self.format(ScenarioLimits.maxSamples)) samples",
        found: Self.format(t.sampleEveryMs))
    }
    return t
  }

  func agent(_ v: JSONValue, _ path: String) -> AgentSpec? {
    guard let o = object(v, path, allowed: ["name", "count", "methods", "processingMs"]) else { return nil }
    guard let name = string(o, "name", path, required: true) else { return nil }
    if !Envelope.isValidWorkerName(name) {
      problem("\(path).name", expected: "a worker name ^[A-Za-z][A-Za-z0-9_-]{0,63}$", found: found(.string(name)))
    }
    let count = integer(o, "count", path, min: 1, max: ScenarioLimits.maxWorkers) ?? 1
    if count > 1 && Envelope.isValidWorkerName(name) && !Envelope.isValidWorkerName("\(name)-\(count - 1)") {
      problem(
        "\(path).name", expected: "a name short enough for \"\(name)-\(count - 1)\"", found: found(.string(name)))
    }
    var methods: [String: ProducerBehaviour] = [:]
    if let m = o["methods"] {
      guard case .object(let mo) = m else {
        problem("\(path).methods", expected: "an object of stream methods", found: found(m))
        return nil
      }
      for (method, spec) in mo.sorted(by: { $0.key < $1.key }) {
        if let b = behaviour(spec, at("\(path).methods", method)) { methods[method] = b }
      }
    }
    return AgentSpec(
      name: name, count: count, methods: methods, processingMs: time(o, "processingMs", path) ?? 0)
  }

  func behaviour(_ v: JSONValue, _ path: String) -> ProducerBehaviour? {
    guard let o = object(v, path, allowed: ["chunks", "content", "intervalMs", "finish", "emitAfterFinish"]) else {
      return nil
    }
    let chunks = integer(o, "chunks", path, min: 0, max: ScenarioLimits.maxChunks) ?? 0
    if o["chunks"] == nil {
      problem("\(path).chunks", expected: "an integer from 0 to \(ScenarioLimits.maxChunks)", found: "nothing")
    }
    let content = o["content"].map { chunkContent($0, "\(path).content") } ?? .sequence
    let interval = time(o, "intervalMs", path) ?? 0
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
      guard let size = integer(o, "size", path, min: 0, max: ScenarioLimits.maxContentSize) else {
        if o["size"] == nil { problem("\(path).size", expected: "a size in characters", found: "nothing") }
        return nil
      }
      return .text(size: size)
    case "binary"?:
      guard let size = integer(o, "size", path, min: 6, max: ScenarioLimits.maxContentSize) else {
        if o["size"] == nil { problem("\(path).size", expected: "a size in bytes (≥ 6)", found: "nothing") }
        return nil
      }
      return .binary(size: size)
    case let other?:
      problem("\(path).kind", expected: kinds, found: found(.string(other)))
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
      problem(
        "\(path).kind", expected: "\"end\", \"error\", \"throw\", \"hang\" or \"crash\"", found: found(.string(other)))
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
      case "constant": kind = .delay(.constant(time(o, "ms", path) ?? 0))
      case "uniform":
        let lo = time(o, "minMs", path) ?? 0
        let hi = time(o, "maxMs", path) ?? lo
        if hi < lo { problem("\(path).maxMs", expected: "maxMs ≥ minMs (\(Self.format(lo)))", found: Self.format(hi)) }
        kind = .delay(.uniform(min: lo, max: max(lo, hi)))
      case "exponential": kind = .delay(.exponential(mean: time(o, "ms", path) ?? 0))
      case let other:
        problem(
          "\(path).distribution", expected: "\"constant\", \"uniform\" or \"exponential\"",
          found: found(.string(other)))
        kind = nil
      }
    case "forge"?:
      onlyMembers(o, common.union(["forge", "from", "ms"]), path, kind: "forge")
      let what = string(o, "forge", path, required: true)
      guard let what, let forgery = Fault.Forgery(rawValue: what) else {
        if let what {
          problem(
            "\(path).forge", expected: "one of " + Fault.Forgery.allCases.map(\.rawValue).joined(separator: ", "),
            found: found(.string(what)))
        }
        return nil
      }
      let from = string(o, "from", path, required: forgery.needsSender)
      if forgery.needsSender && from == nil { return nil }
      kind = .forge(forgery, from: from, afterMs: time(o, "ms", path) ?? 0)
    case let other?:
      problem(
        "\(path).kind", expected: "\"drop\", \"duplicate\", \"delay\" or \"forge\"", found: found(.string(other)))
      kind = nil
    case nil: kind = nil
    }
    guard let kind else { return nil }
    return Fault(
      kind, types: types, nth: integer(o, "nth", path, min: 0, max: ScenarioLimits.maxChunks),
      probability: number(o, "probability", path, min: 0, max: 1) ?? 1,
      between: between, fromMs: time(o, "fromMs", path), untilMs: time(o, "untilMs", path))
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
      streams: integer(o, "streams", path, min: 1, max: ScenarioLimits.maxStreams) ?? 1,
      concurrency: integer(o, "concurrency", path, min: 1, max: ScenarioLimits.maxStreams),
      ratePerSecond: number(
        o, "ratePerSecond", path, min: 0.001, max: ScenarioLimits.maxRatePerSecond, what: "a rate per second"),
      startMs: time(o, "startMs", path) ?? 0,
      timeoutMs: time(o, "timeoutMs", path),
      cancelAfterChunks: integer(o, "cancelAfterChunks", path, min: 0, max: ScenarioLimits.maxChunks),
      throwingCallbacks: throwing)
    group.creditWindow = integer(o, "creditWindow", path, min: 1, max: ScenarioLimits.maxCreditWindow)
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
      problem("\(path).rule", expected: "a KSP rule id such as \"KSP-3.2\"", found: found(.string(rule)))
    }
    if raw["metric"] != nil {
      guard let o = object(v, path, allowed: ["metric", "min", "max", "rule"]) else { return nil }
      guard let name = string(o, "metric", path, required: true) else { return nil }
      guard let metric = Metric(rawValue: name) else {
        problem(
          "\(path).metric", expected: "one of " + Metric.allCases.map(\.rawValue).joined(separator: ", "),
          found: found(.string(name)))
        return nil
      }
      let bound = ScenarioLimits.maxMagnitude
      let min = number(o, "min", path, min: -bound, max: bound)
      let max = number(o, "max", path, min: -bound, max: bound)
      if min == nil && max == nil && o["min"] == nil && o["max"] == nil {
        problem(path, expected: "\"min\" or \"max\"", found: "neither")
      }
      if let min, let max, min > max {
        problem("\(path).min", expected: "min ≤ max (\(Self.format(max)))", found: Self.format(min))
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
    case "activity_refresh"?: kind = object(v, path, allowed: base).map { _ in .activityRefresh }
    case "end_after_chunks"?: kind = object(v, path, allowed: base).map { _ in .endAfterChunks }
    case "handler_runs"?:
      kind = object(v, path, allowed: base.union(["perStream"])).map { o in
        .handlerRuns(integer(o, "perStream", path, min: 0, max: ScenarioLimits.maxChunks) ?? 1)
      }
    case "memory_returns"?, "peak_memory"?:
      kind = object(v, path, allowed: base.union(["maxBytes"])).flatMap { o in
        guard let max = integer(o, "maxBytes", path, min: 0, max: Int(ScenarioLimits.maxMagnitude)) else {
          if o["maxBytes"] == nil { problem("\(path).maxBytes", expected: "a number of bytes", found: "nothing") }
          return nil
        }
        return check == "memory_returns" ? .memoryReturns(maxBytes: max) : .peakMemory(maxBytes: max)
      }
    case "no_leak"?:
      kind = object(v, path, allowed: base.union(["maxBytesPerStream", "maxBytesPerChunk"])).flatMap { o in
        let perStream = number(o, "maxBytesPerStream", path, min: 0, max: ScenarioLimits.maxMagnitude)
        let perChunk = number(o, "maxBytesPerChunk", path, min: 0, max: ScenarioLimits.maxMagnitude)
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
          if let terminal {
            problem("\(path).terminal", expected: "\"end\" or \"error\"", found: found(.string(terminal)))
          }
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
        found: found(.string(other)))
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
    let footprint = s.footprint
    if footprint.workers > ScenarioLimits.maxWorkers {
      problem(
        "$.agents", expected: "at most \(ScenarioLimits.maxWorkers) workers in all agents (their counts added up)",
        found: "\(footprint.workers)")
    } else {
      var names: Set<String> = []
      for (i, a) in s.agents.enumerated() {
        for w in a.workerNames where !names.insert(w).inserted {
          problem("$.agents[\(i)].name", expected: "a name no other agent uses", found: found(.string(w)) + " again")
        }
      }
    }
    if footprint.streams > ScenarioLimits.maxStreams {
      problem(
        "$.workload", expected: "at most \(ScenarioLimits.maxStreams) streams in all groups",
        found: "\(footprint.streams) streams, an estimated \(ScenarioFootprint.bytesText(footprint.bytes)) of memory")
    }
    if footprint.chunks > ScenarioLimits.maxTotalChunks {
      problem(
        "$.workload", expected: "at most \(ScenarioLimits.maxTotalChunks) chunks in all groups (streams × chunks)",
        found: "\(footprint.chunks == Int.max ? "more than \(Int.max)" : "\(footprint.chunks)") chunks")
    }
    let declared = Set(s.agents.map(\.name))
    let listed = declared.sorted().prefix(10).joined(separator: ", ") + (declared.count > 10 ? ", …" : "")
    for (i, g) in s.workload.enumerated() {
      let path = "$.workload[\(i)]"
      for (key, value) in [("consumers", g.consumers), ("producers", g.producers)] where !declared.contains(value) {
        problem(
          "\(path).\(key)", expected: "the name of an agent in $.agents (\(listed))", found: found(.string(value)))
      }
      if g.concurrency != nil && g.ratePerSecond != nil {
        problem(
          path, expected: "either \"concurrency\" (closed model) or \"ratePerSecond\" (open model)", found: "both")
      }
    }
  }
}
