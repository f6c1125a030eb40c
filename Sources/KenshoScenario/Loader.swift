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
    if let scenario, !reader.hasProblems { return scenario }
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
/// Builds the model from a file checked against ``ScenarioFormat``, then checks what the format
/// cannot say (``ScenarioFormat/codeRules``), each at the path it concerns. Members with a
/// problem are absent from what it builds from, so it uses defaults for them and never reports
/// them twice.
final class Reader: FormatChecker {
  func scenario(_ json: JSONValue) -> Scenario? {
    guard case .object(let o)? = check(json, ScenarioFormat.scenario, "$") else { return nil }
    var scenario = Scenario(
      name: o.string("name") ?? "", description: o.string("description") ?? "",
      seed: o.int("seed").flatMap { UInt64(exactly: $0) } ?? 1,
      time: o.object("time").map { timeSettings($0, "$.time") } ?? TimeSettings(),
      agents: o.items("agents").compactMap { i, v in v.objectValue.flatMap { agent($0, "$.agents[\(i)]") } },
      workload: o.items("workload").compactMap { _, v in v.objectValue.flatMap(group) },
      expect: o.items("expect").compactMap { i, v in v.objectValue.flatMap { expectation($0, "$.expect[\(i)]") } },
      file: file)
    for (key, limit) in o.object("regression") ?? [:] {
      if let metric = Metric(rawValue: key), let limit = limit.doubleValue { scenario.regressionLimits[metric] = limit }
    }
    // Names as the file declares them, valid or not, so that a bad agent is reported once.
    let agentNames = Set(json["agents"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
    let agentsChecked = o["agents"] != nil
    let faults = o.items("faults").compactMap { i, v in v.objectValue.flatMap { fault($0, "$.faults[\(i)]") } }
    scenario.faults = faults.map(\.fault)
    for fault in faults {
      for (j, name) in fault.between where agentsChecked && !agentNames.contains(name) {
        problem("\(fault.path).between[\(j)]", expected: agentName(agentNames), found: found(.string(name)))
      }
      if case .forge(_, let from?, _) = fault.fault.kind, agentsChecked, !agentNames.contains(from) {
        problem("\(fault.path).from", expected: agentName(agentNames), found: found(.string(from)))
      }
    }
    let relayNetwork = o.object("network")?.string("kind") == NetworkSettings.Kind.relay.rawValue
    for (i, v) in o.items("actions") {
      guard let a = v.objectValue else { continue }
      let (member, kind): (String, Action.Kind)
      if let agent = a.string("disconnect") {
        (member, kind) = ("disconnect", .disconnect(agent))
        if !relayNetwork {
          problem(
            "$.actions[\(i)].disconnect", expected: "network kind \"relay\" (only the relay's connections can be cut)",
            found: "a scenario on the harness's network")
        }
      } else if let agent = a.string("dispose") {
        (member, kind) = ("dispose", .dispose(agent))
      } else {
        continue
      }
      if agentsChecked && !agentNames.contains(kind.agent) {
        problem("$.actions[\(i)].\(member)", expected: agentName(agentNames), found: found(.string(kind.agent)))
      }
      scenario.actions.append(Action(atMs: a.double("atMs") ?? 0, kind: kind))
    }
    if let n = o.object("network") {
      scenario.network.kind = n.string("kind").flatMap(NetworkSettings.Kind.init(rawValue:)) ?? .harness
      scenario.network.token = n.string("token")
      scenario.network.probe = n.bool("probe") ?? true
      if scenario.network.kind == .relay {
        if scenario.time.mode != .real {
          problem(
            "$.network.kind", expected: "\"harness\" unless time.mode is \"real\" (a relay runs in real time)",
            found: "\"relay\" with time.mode \"\(scenario.time.mode.rawValue)\"")
        }
        // A crash is the harness's to simulate: it silences a worker on its own network; on a
        // relay the worker's bus would still end its streams (a false verdict either way).
        for (i, agent) in scenario.agents.enumerated() {
          for (name, behaviour) in agent.methods.sorted(by: { $0.key < $1.key }) {
            if case .crash = behaviour.finish {
              problem(
                SafeText.member("$.agents[\(i)].methods", name) + ".finish.kind",
                expected: "end, error, throw or hang with network kind \"relay\" (a crash needs the harness's network)",
                found: "\"crash\"")
            }
          }
        }
        // Drops, copies and delays act at the embedded relay; forged messages need the
        // harness's own network.
        for (i, fault) in scenario.faults.enumerated() {
          if case .forge = fault.kind {
            problem(
              "$.faults[\(i)].kind",
              expected:
                "drop, duplicate or delay with network kind \"relay\" (forged messages need the harness's network)",
              found: "\"forge\"")
          }
        }
      }
    }
    crossCheck(scenario, o, agentNames)
    return scenario
  }

  /// What a name of an agent is expected to be: one of those declared (the first ten listed).
  func agentName(_ names: Set<String>) -> String {
    "the name of an agent in $.agents ("
      + names.sorted().prefix(10).map { SafeText.quoted($0) }.joined(separator: ", ")
      + (names.count > 10 ? ", …)" : ")")
  }

  func timeSettings(_ o: [String: JSONValue], _ path: String) -> TimeSettings {
    var t = TimeSettings()
    t.mode = o.string("mode").flatMap(TimeSettings.Mode.init(rawValue:)) ?? t.mode
    t.streamTimeoutMs = o.double("streamTimeoutMs")
    t.sweepIntervalMs = o.double("sweepIntervalMs")
    t.deadlineMs = o.double("deadlineMs") ?? t.deadlineMs
    t.sampleEveryMs = o.double("sampleEveryMs") ?? t.sampleEveryMs
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

  func agent(_ o: [String: JSONValue], _ path: String) -> AgentSpec? {
    guard let name = o.string("name") else { return nil }
    let count = o.int("count") ?? 1
    if count > 1 && !Envelope.isValidWorkerName("\(name)-\(count - 1)") {
      problem(
        "\(path).name", expected: "a name short enough for \"\(name)-\(count - 1)\"", found: found(.string(name)))
    }
    var methods: [String: ProducerBehaviour] = [:]
    for (method, spec) in o.object("methods") ?? [:] {
      if let b = spec.objectValue { methods[method] = behaviour(b) }
    }
    return AgentSpec(name: name, count: count, methods: methods, processingMs: o.double("processingMs") ?? 0)
  }

  func behaviour(_ o: [String: JSONValue]) -> ProducerBehaviour {
    var behaviour = ProducerBehaviour(
      chunks: o.int("chunks") ?? 0, content: o.object("content").map(content) ?? .sequence,
      intervalMs: o.double("intervalMs") ?? 0, finish: o.object("finish").map(finish) ?? .end(nil))
    behaviour.emitAfterFinish = o.bool("emitAfterFinish") ?? false
    return behaviour
  }

  func content(_ o: [String: JSONValue]) -> ChunkContent {
    switch o.string("kind") {
    case "json": .json(o["value"] ?? .null)
    case "values": .values(o.array("values") ?? [])
    case "text": .text(size: o.int("size") ?? 0)
    case "binary": .binary(size: o.int("size") ?? 6)
    default: .sequence
    }
  }

  func finish(_ o: [String: JSONValue]) -> Finish {
    func error() -> SerializedError {
      let e = o.object("error") ?? [:]
      return SerializedError(
        name: e.string("name") ?? "", message: e.string("message") ?? "", code: e.string("code"),
        stack: e.string("stack"))
    }
    switch o.string("kind") {
    case "error": return .error(error())
    case "throw": return .throwError(error())
    case "hang": return .hang
    case "crash": return .crash(announced: o.bool("announced") ?? false)
    default: return .end(o["summary"])
    }
  }

  func fault(_ o: [String: JSONValue], _ path: String) -> (fault: Fault, path: String, between: [(Int, String)])? {
    let kind: Fault.Kind
    switch o.string("kind") {
    case "drop": kind = .drop
    case "duplicate": kind = .duplicate
    case "delay":
      switch o.string("distribution") ?? "constant" {
      case "uniform":
        let lo = o.double("minMs") ?? 0
        let hi = o.double("maxMs") ?? lo
        if hi < lo { problem("\(path).maxMs", expected: "maxMs ≥ minMs (\(Self.format(lo)))", found: Self.format(hi)) }
        kind = .delay(.uniform(min: lo, max: max(lo, hi)))
      case "exponential": kind = .delay(.exponential(mean: o.double("ms") ?? 0))
      default: kind = .delay(.constant(o.double("ms") ?? 0))
      }
    case "forge":
      guard let forgery = o.string("forge").flatMap(Fault.Forgery.init(rawValue:)) else { return nil }
      let from = o.string("from")
      if forgery.needsSender && from == nil { return nil }
      kind = .forge(forgery, from: forgery.needsSender ? from : nil, afterMs: o.double("ms") ?? 0)
    default: return nil
    }
    let named = (o.array("between") ?? []).enumerated().compactMap { j, v in v.stringValue.map { (j, $0) } }
    let fault = Fault(
      kind, types: Set((o.array("types") ?? []).compactMap { $0.stringValue.flatMap(MessageType.init(rawValue:)) }),
      nth: o.int("nth"), probability: o.double("probability") ?? 1,
      between: named.count == 2 ? (named[0].1, named[1].1) : nil, fromMs: o.double("fromMs"),
      untilMs: o.double("untilMs"))
    return (fault, path, named)
  }

  func group(_ o: [String: JSONValue]) -> WorkloadGroup? {
    guard let consumers = o.string("consumers"), let producers = o.string("producers"), let method = o.string("method")
    else { return nil }
    var group = WorkloadGroup(
      consumers: consumers, producers: producers, method: method, args: o["args"] ?? .null,
      streams: o.int("streams") ?? 1, concurrency: o.int("concurrency"), ratePerSecond: o.double("ratePerSecond"),
      startMs: o.double("startMs") ?? 0, timeoutMs: o.double("timeoutMs"),
      cancelAfterChunks: o.int("cancelAfterChunks"),
      throwingCallbacks: Set((o.array("throwIn") ?? []).compactMap { $0.stringValue.flatMap(CallbackKind.init) }))
    group.creditWindow = o.int("creditWindow")
    group.traced = o.bool("traced") ?? false
    return group
  }

  func expectation(_ o: [String: JSONValue], _ path: String) -> Expectation? {
    let rule = o.string("rule")
    let kind: Expectation.Kind
    if let name = o.string("metric") {
      guard let metric = Metric(rawValue: name) else { return nil }
      let min = o.double("min")
      let max = o.double("max")
      if let min, let max, min > max {
        problem("\(path).min", expected: "min ≤ max (\(Self.format(max)))", found: Self.format(min))
      }
      kind = .metric(metric, min: min, max: max)
    } else {
      guard let check = o.string("check"), let k = Self.check(check, o) else { return nil }
      kind = k
    }
    if let rule, !kind.decidableRules.contains(rule) {
      problem(
        "\(path).rule",
        expected: "a rule that \(kind.name) decides (" + kind.decidableRules.sorted().joined(separator: ", ") + ")",
        found: found(.string(rule)))
      return nil
    }
    return Expectation(kind, rule: rule)
  }

  /// The check named `name`, with its members from `o`; every name of ``ScenarioFormat/checks``.
  static func check(_ name: String, _ o: [String: JSONValue]) -> Expectation.Kind? {
    switch name {
    case "ordered_delivery": .orderedDelivery
    case "exactly_one_terminal": .exactlyOneTerminal
    case "summary_preserved": .summaryPreserved
    case "active_streams_empty": .activeStreamsEmpty
    case "timeout_window": .timeoutWindow
    case "wire_valid": .wireValid
    case "stream_requests": .streamRequests
    case "trace_propagated": .tracePropagated
    case "emitter_closed": .emitterClosed
    case "payload_sha256": .payloadDigest
    case "malformed_dropped": .malformedDropped
    case "misaddressed_ignored": .misaddressedIgnored
    case "chunks_addressed": .chunksAddressed
    case "cancel_stops_producer": .cancelStopsProducer
    case "foreign_cancel_ignored": .foreignCancelIgnored
    case "seq_delivery": .seqDelivery
    case "inactive_chunks_dropped": .inactiveChunksDropped
    case "activity_refresh": .activityRefresh
    case "end_after_chunks": .endAfterChunks
    case "disconnect_recovery": .disconnectRecovery
    case "reconnect": .reconnect(withinMs: o.double("withinMs") ?? 10_000)
    case "relay_fanout": .relayFanOut
    case "relay_order": .relayOrder
    case "relay_ping": .relayPing
    case "relay_server_info": .relayServerInfo
    case "relay_auth": .relayAuth
    case "relay_slow_receiver": .relaySlowReceiver
    case "handler_runs": .handlerRuns(o.int("perStream") ?? 1)
    case "memory_returns": .memoryReturns(maxBytes: o.int("maxBytes") ?? 0)
    case "peak_memory": .peakMemory(maxBytes: o.int("maxBytes") ?? 0)
    case "no_leak":
      .noLeak(maxBytesPerStream: o.double("maxBytesPerStream"), maxBytesPerChunk: o.double("maxBytesPerChunk"))
    case "outcome":
      .outcome(
        OutcomeMatch(
          terminal: o.string("terminal").flatMap(OutcomeMatch.Terminal.init) ?? .end, code: o.string("code"),
          name: o.string("name"), message: o.string("message"), fraction: o.double("fraction") ?? 1))
    default: nil
    }
  }

  /// Problems that span members: sums within the limits, unique worker names, workload names
  /// that refer to declared agents. (Methods are not checked: calling an unregistered method is
  /// a scenario of its own, KSP-2.3.)
  func crossCheck(_ s: Scenario, _ o: [String: JSONValue], _ declared: Set<String>) {
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
    // Without agents (a problem of its own), names cannot refer to any.
    guard o["agents"] != nil else { return }
    for (i, v) in o.items("workload") {
      guard let g = v.objectValue else { continue }
      for key in ["consumers", "producers"] {
        if let name = g.string(key), !declared.contains(name) {
          problem("$.workload[\(i)].\(key)", expected: agentName(declared), found: found(.string(name)))
        }
      }
    }
  }
}

/// Reading members of an object that passed ``FormatChecker/check(_:_:_:)``.
extension [String: JSONValue] {
  fileprivate func string(_ key: String) -> String? { self[key]?.stringValue }
  fileprivate func double(_ key: String) -> Double? { self[key]?.doubleValue }
  fileprivate func int(_ key: String) -> Int? { self[key]?.intValue.flatMap { Int(exactly: $0) } }
  fileprivate func bool(_ key: String) -> Bool? { self[key]?.boolValue }
  fileprivate func object(_ key: String) -> [String: JSONValue]? { self[key]?.objectValue }
  fileprivate func array(_ key: String) -> [JSONValue]? { self[key]?.arrayValue }
  /// The items of an array member with their indexes (items with a problem are `null`).
  fileprivate func items(_ key: String) -> EnumeratedSequence<[JSONValue]> { (array(key) ?? []).enumerated() }
}

extension Expectation.Kind {
  /// The check called `name` in scenario files, with its members at their defaults.
  public static func named(_ name: String) -> Expectation.Kind? { Reader.check(name, [:]) }
}
