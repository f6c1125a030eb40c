import Foundation
import KenshoProtocol
import KenshoScenario
import Testing

/// A valid scenario with `edit` applied to its JSON object.
func scenarioText(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> Data {
  var o: [String: Any] = [
    "format": "kensho-scenario/1", "name": "bounds",
    "agents": [["name": "p", "methods": ["m": ["chunks": 2]]], ["name": "c"]],
    "workload": [["consumers": "c", "producers": "p", "method": "m"]],
    "expect": [["check": "ordered_delivery"]],
  ]
  edit(&o)
  return try JSONSerialization.data(withJSONObject: o)
}

/// The problems of loading `data` as `x.json`, or none.
func loadProblems(_ data: Data) -> [ScenarioProblem] {
  do {
    _ = try ScenarioLoader.load(data: data, file: "x.json")
    return []
  } catch {
    return error.problems
  }
}

/// Edits the member `key` of `o[outer][index]` (or of `o[outer]` when `index` is nil).
func set(_ o: inout [String: Any], _ outer: String, _ index: Int?, _ key: String, _ value: Any) {
  if let index {
    var items = o[outer] as? [[String: Any]] ?? []
    while items.count <= index { items.append([:]) }
    items[index][key] = value
    o[outer] = items
  } else {
    var object = o[outer] as? [String: Any] ?? [:]
    object[key] = value
    o[outer] = object
  }
}

@Suite("Scenario limits: every number bounded where it enters")
struct LimitsTests {
  /// One bounded value: where it goes, the largest and smallest accepted, the path of the problem.
  struct Bound: CustomTestStringConvertible, Sendable {
    var path: String
    var highest: Double
    var lowest: Double
    var expected: String
    var place: @Sendable (inout [String: Any], Any) -> Void
    var testDescription: String { path }
  }

  static let maxMs = ScenarioLimits.maxTimeMs
  static let timeText = "a time in ms from"

  static func behaviour(_ key: String) -> @Sendable (inout [String: Any], Any) -> Void {
    { o, v in
      var method: [String: Any] = ["chunks": 2]
      method[key] = v
      o["agents"] = [["name": "p", "methods": ["m": method]], ["name": "c"]]
    }
  }
  static func group(_ key: String) -> @Sendable (inout [String: Any], Any) -> Void {
    { o, v in set(&o, "workload", 0, key, v) }
  }
  static func time(_ key: String) -> @Sendable (inout [String: Any], Any) -> Void {
    { o, v in set(&o, "time", nil, key, v) }
  }
  static func fault(_ extra: [String: Any], _ key: String) -> @Sendable (inout [String: Any], Any) -> Void {
    nonisolated(unsafe) let extra = extra
    return { o, v in
      var f = extra
      f[key] = v
      o["faults"] = [f]
    }
  }

  static let bounds: [Bound] = [
    Bound(
      path: "$.time.streamTimeoutMs", highest: maxMs, lowest: 0, expected: timeText, place: time("streamTimeoutMs")),
    Bound(
      path: "$.time.sweepIntervalMs", highest: maxMs, lowest: 1, expected: timeText, place: time("sweepIntervalMs")),
    Bound(path: "$.time.deadlineMs", highest: maxMs, lowest: 1, expected: timeText, place: time("deadlineMs")),
    Bound(path: "$.time.sampleEveryMs", highest: maxMs, lowest: 1, expected: timeText, place: time("sampleEveryMs")),
    Bound(
      path: "$.agents[0].processingMs", highest: maxMs, lowest: 0, expected: timeText,
      place: { o, v in
        o["agents"] = [["name": "p", "processingMs": v, "methods": ["m": ["chunks": 2]]], ["name": "c"]]
      }),
    Bound(
      path: "$.agents[0].count", highest: Double(ScenarioLimits.maxWorkers), lowest: 1, expected: "an integer from 1",
      place: { o, v in
        o["agents"] = [["name": "p", "count": v, "methods": ["m": ["chunks": 2]]]]
        o["workload"] = [["consumers": "p", "producers": "p", "method": "m"]]
      }),
    Bound(
      path: "$.agents[0].methods.m.chunks", highest: Double(ScenarioLimits.maxChunks), lowest: 0,
      expected: "an integer from 0 to 1000000000", place: behaviour("chunks")),
    Bound(
      path: "$.agents[0].methods.m.intervalMs", highest: maxMs, lowest: 0, expected: timeText,
      place: behaviour("intervalMs")),
    Bound(
      path: "$.workload[0].streams", highest: Double(ScenarioLimits.maxStreams), lowest: 1,
      expected: "an integer from 1 to 10000000", place: group("streams")),
    Bound(
      path: "$.workload[0].concurrency", highest: Double(ScenarioLimits.maxStreams), lowest: 1,
      expected: "an integer from 1", place: group("concurrency")),
    Bound(
      path: "$.workload[0].ratePerSecond", highest: ScenarioLimits.maxRatePerSecond, lowest: 0.001,
      expected: "a rate per second from 0.001 to 1000000", place: group("ratePerSecond")),
    Bound(path: "$.workload[0].startMs", highest: maxMs, lowest: 0, expected: timeText, place: group("startMs")),
    Bound(path: "$.workload[0].timeoutMs", highest: maxMs, lowest: 0, expected: timeText, place: group("timeoutMs")),
    Bound(
      path: "$.workload[0].cancelAfterChunks", highest: Double(ScenarioLimits.maxChunks), lowest: 1,
      expected: "an integer from 1", place: group("cancelAfterChunks")),
    Bound(
      path: "$.workload[0].creditWindow", highest: Double(ScenarioLimits.maxCreditWindow), lowest: 1,
      expected: "an integer from 1 to 1073741824", place: group("creditWindow")),
    Bound(
      path: "$.faults[0].ms", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "delay", "distribution": "constant"], "ms")),
    Bound(
      path: "$.faults[0].ms", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "delay", "distribution": "exponential"], "ms")),
    Bound(
      path: "$.faults[0].minMs", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "delay", "distribution": "uniform", "maxMs": maxMs], "minMs")),
    Bound(
      path: "$.faults[0].maxMs", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "delay", "distribution": "uniform"], "maxMs")),
    Bound(
      path: "$.faults[0].ms", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "forge", "forge": "malformed_chunk"], "ms")),
    Bound(
      path: "$.faults[0].fromMs", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "drop"], "fromMs")),
    Bound(
      path: "$.faults[0].untilMs", highest: maxMs, lowest: 0, expected: timeText,
      place: fault(["kind": "drop"], "untilMs")),
    Bound(
      path: "$.faults[0].nth", highest: Double(ScenarioLimits.maxChunks), lowest: 0, expected: "an integer from 0",
      place: fault(["kind": "drop"], "nth")),
    Bound(
      path: "$.actions[0].atMs", highest: maxMs, lowest: 0, expected: timeText,
      place: { o, v in o["actions"] = [["dispose": "c", "atMs": v]] }),
    Bound(
      path: "$.regression.chunks_per_second", highest: ScenarioLimits.maxRegression, lowest: 0,
      expected: "a fraction from 0 to 1000", place: { o, v in o["regression"] = ["chunks_per_second": v] }),
    Bound(
      path: "$.expect[0].max", highest: 1e18, lowest: -1e18, expected: "a number from -1000000000000000000",
      place: { o, v in o["expect"] = [["metric": "chunks_delivered", "max": v]] }),
    Bound(
      path: "$.expect[0].perStream", highest: Double(ScenarioLimits.maxChunks), lowest: 0,
      expected: "an integer from 0", place: { o, v in o["expect"] = [["check": "handler_runs", "perStream": v]] }),
    Bound(
      path: "$.expect[0].maxBytes", highest: 1e18, lowest: 0, expected: "an integer from 0",
      place: { o, v in o["expect"] = [["check": "peak_memory", "maxBytes": v]] }),
    Bound(
      path: "$.expect[0].maxBytesPerStream", highest: 1e18, lowest: 0, expected: "a number from 0",
      place: { o, v in o["expect"] = [["check": "no_leak", "maxBytesPerStream": v]] }),
    Bound(
      path: "$.expect[0].fraction", highest: 1, lowest: 0, expected: "a number from 0 to 1",
      place: { o, v in o["expect"] = [["check": "outcome", "terminal": "end", "fraction": v]] }),
    Bound(
      path: "$.seed", highest: Double(Int64.max), lowest: 0, expected: "an integer from 0 to 9223372036854775807",
      place: { o, v in o["seed"] = v }),
  ]

  @Test(
    "a value at either end of its range loads; beyond it, the problem names the file, the path and the range",
    arguments: bounds)
  func bound(_ b: Bound) throws {
    for inside in [b.lowest, b.highest] {
      let value: Any = b.path == "$.seed" && inside > 0 ? Int64.max : inside
      let found = loadProblems(try scenarioText { b.place(&$0, value) })
      #expect(found.isEmpty, "\(b.path) = \(inside): \(found)")
    }
    let beyond = b.highest < 1e17 ? b.highest * 10 + 1 : 1e19
    // Beyond the top, below the bottom, and the numbers that trapped before.
    for outside in [beyond, b.lowest - 1, 1e19, 1e300, -1e19] where outside < b.lowest || outside > b.highest {
      let found = loadProblems(try scenarioText { b.place(&$0, outside) })
      let problem = found.first { $0.path == b.path }
      #expect(problem?.file == "x.json", "\(b.path) = \(outside): \(found)")
      #expect(problem?.expected.hasPrefix(b.expected) == true, "\(b.path) = \(outside): \(found)")
    }
  }

  @Test("the issue's traps: min > max with huge numbers, uniform minMs > maxMs, startMs 1e13 are problems")
  func issueCases() throws {
    let metric = loadProblems(
      try scenarioText { $0["expect"] = [["metric": "chunks_delivered", "min": 1e19, "max": 0]] })
    #expect(metric.map(\.path) == ["$.expect[0].min"])
    let ordered = loadProblems(
      try scenarioText { $0["expect"] = [["metric": "chunks_delivered", "min": 1e17, "max": 0]] })
    #expect(ordered.map(\.description) == ["x.json: $.expect[0].min: expected min ≤ max (0), found 100000000000000000"])
    let uniform = loadProblems(
      try scenarioText { $0["faults"] = [["kind": "delay", "distribution": "uniform", "minMs": 1e19, "maxMs": 0]] })
    #expect(uniform.map(\.path) == ["$.faults[0].minMs"])
    let reversed = loadProblems(
      try scenarioText { $0["faults"] = [["kind": "delay", "distribution": "uniform", "minMs": 900, "maxMs": 0.5]] })
    #expect(reversed.map(\.description) == ["x.json: $.faults[0].maxMs: expected maxMs ≥ minMs (900), found 0.5"])
    let start = loadProblems(try scenarioText { set(&$0, "workload", 0, "startMs", 1e13) })
    #expect(
      start.map(\.description) == [
        "x.json: $.workload[0].startMs: expected a time in ms from 0 to 1000000000, found 10000000000000"
      ])
    let chunks = loadProblems(
      try scenarioText { $0["agents"] = [["name": "p", "methods": ["m": ["chunks": 1e12]]], ["name": "c"]] })
    #expect(chunks.map(\.path) == ["$.agents[0].methods.m.chunks"])
  }

  @Test("-0 is 0; 1e400 (beyond a double) is a problem, not infinity")
  func oddNumbers() throws {
    let zero = try ScenarioLoader.load(
      data: try scenarioText { set(&$0, "workload", 0, "startMs", 0) }.replacing(
        Data("\"startMs\":0".utf8), with: Data("\"startMs\":-0.0".utf8)),
      file: "x.json")
    #expect(zero.workload[0].startMs == 0 && zero.workload[0].startMs.sign == .plus)
    let huge = try scenarioText { set(&$0, "workload", 0, "startMs", 7) }.replacing(
      Data("\"startMs\":7".utf8), with: Data("\"startMs\":1e400".utf8))
    #expect(
      loadProblems(huge).map(\.description) == [
        "x.json: $.workload[0].startMs: expected a time in ms from 0 to 1000000000, found a number beyond ±1.8e308"
      ])
  }

  @Test("sums are bounded: workers, streams and chunks of the whole scenario, and samples before the deadline")
  func sums() throws {
    let workers = loadProblems(
      try scenarioText {
        $0["agents"] = [
          ["name": "p", "count": 60_000, "methods": ["m": ["chunks": 2]]], ["name": "c", "count": 60_000],
        ]
      })
    #expect(workers.map(\.path) == ["$.agents"])
    #expect(workers.first?.expected == "at most 100000 workers in all agents (their counts added up)")
    let streams = loadProblems(
      try scenarioText {
        $0["workload"] = Array(
          repeating: ["consumers": "c", "producers": "p", "method": "m", "streams": 6_000_000], count: 2)
      })
    #expect(streams.map(\.path) == ["$.workload"])
    #expect(streams.first?.found.hasPrefix("12000000 streams, an estimated") == true, "\(streams)")
    let chunks = loadProblems(
      try scenarioText {
        $0["agents"] = [["name": "p", "methods": ["m": ["chunks": 1_000_000_000]]], ["name": "c"]]
        $0["workload"] = [["consumers": "c", "producers": "p", "method": "m", "streams": 11]]
      })
    #expect(chunks.map(\.path) == ["$.workload"])
    #expect(chunks.first?.expected.contains("10000000000 chunks") == true)
    let samples = loadProblems(
      try scenarioText { $0["time"] = ["deadlineMs": 1e9, "sampleEveryMs": 1] })
    #expect(samples.map(\.path) == ["$.time.sampleEveryMs"])
    #expect(samples.first?.expected.hasPrefix("at least 100 ms") == true, "\(samples)")
    #expect(loadProblems(try scenarioText { $0["time"] = ["deadlineMs": 1e9, "sampleEveryMs": 100] }).isEmpty)
    let faults = loadProblems(try scenarioText { $0["faults"] = Array(repeating: ["kind": "drop"], count: 1_001) })
    #expect(faults.map(\.path) == ["$.faults"])
  }

  @Test("the footprint estimates memory; a run the machine cannot hold is a problem with the estimate")
  func footprint() throws {
    let big = try ScenarioLoader.load(
      data: try scenarioText {
        $0["agents"] = [
          ["name": "p", "methods": ["m": ["chunks": 2, "content": ["kind": "binary", "size": 1 << 20]]]], ["name": "c"],
        ]
        set(&$0, "workload", 0, "streams", 100_000)
      }, file: "big.json")
    let f = big.footprint
    #expect(f.streams == 100_000 && f.openStreams == 100_000 && f.workers == 2)
    #expect(f.bytes > 200_000_000_000, "100000 open streams each holding 2.3 MB of binary data: \(f)")
    let problem = try #require(ScenarioLoader.memoryProblem(big, budget: 8 << 30, machine: "80 % of 10.7 GB"))
    #expect(problem.file == "big.json")
    #expect(problem.path == "$.workload")
    #expect(problem.expected == "a run that fits in 8.6 GB (80 % of 10.7 GB)")
    #expect(problem.found.hasPrefix("an estimated 24"), "\(problem.found)")
    let small = try ScenarioLoader.load(data: try scenarioText(), file: "small.json")
    #expect(ScenarioLoader.memoryProblem(small, budget: 8 << 30, machine: "") == nil)
    #expect(small.footprint.bytes < 64 << 20)
  }

  @Test("a file is read only when it is a regular file of at most 32 MiB: a FIFO or /dev/zero does not hang the loader")
  func fileKinds() throws {
    do {
      _ = try ScenarioLoader.load(file: "/dev/zero")
      Issue.record("/dev/zero loaded")
    } catch {
      #expect(error.problems.map(\.description) == ["/dev/zero: $: expected a regular file, found a special file"])
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-files-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let fifo = folder.appendingPathComponent("fifo.json").path
    #expect(mkfifo(fifo, 0o600) == 0)
    #expect(throws: ScenarioLoadError.self) { try ScenarioLoader.load(file: fifo) }
    do {
      _ = try ScenarioLoader.load(file: fifo)
    } catch {
      #expect(error.problems.map(\.expected) == ["a regular file"])
    }
    let large = folder.appendingPathComponent("large.json")
    #expect(FileManager.default.createFile(atPath: large.path, contents: nil))
    let handle = try FileHandle(forWritingTo: large)
    try handle.truncate(atOffset: UInt64(ScenarioLimits.maxFileBytes) + 1)
    try handle.close()
    do {
      _ = try ScenarioLoader.load(file: large.path)
      Issue.record("a file over the limit loaded")
    } catch {
      #expect(error.problems.map(\.expected) == ["a file of at most 32 MiB"])
    }
  }

  @Test("a folder without scenario files is a problem, so that validate and run exit 2")
  func emptyFolder() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-empty-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    do {
      _ = try ScenarioLoader.files(in: [folder.path])
      Issue.record("an empty folder was accepted")
    } catch {
      #expect(error.problems.map(\.expected) == ["a folder holding scenario files (*.json)"])
      #expect(error.problems.map(\.file) == [folder.path])
    }
  }

  @Test("problems beyond 100 a file are counted, not listed")
  func problemCap() throws {
    let found = loadProblems(
      try scenarioText { o in for i in 0..<500 { o["extra\(i)"] = i } })
    #expect(found.count == ScenarioLimits.maxProblems + 1)
    #expect(found.last?.found == "400 more")
  }
}

@Suite("Nanos: checked conversions to the harness clock")
struct NanosTests {
  @Test("milliseconds convert exactly within the limits and saturate beyond; NaN is 0")
  func fromMilliseconds() {
    #expect(Nanos.from(ms: 1.5) == 1_500_000)
    #expect(Nanos.from(ms: ScenarioLimits.maxTimeMs) == 1_000_000_000_000_000)
    #expect(Nanos.from(ms: 1e13) == Nanos.max)
    #expect(Nanos.from(ms: 1e300) == Nanos.max)
    #expect(Nanos.from(ms: .infinity) == Nanos.max)
    #expect(Nanos.from(ms: -.infinity) == -Nanos.max)
    #expect(Nanos.from(ms: .nan) == 0)
    #expect(Nanos.from(ms: -0.0) == 0)
    #expect(Nanos.from(seconds: 300) == 300_000_000_000)
    #expect(Nanos.from(seconds: 1e300) == Nanos.max)
    #expect(Nanos.max == Int64.max / 2)
    #expect(Nanos.max.addingReportingOverflow(Nanos.max).overflow == false, "two saturated values add up")
  }

  @Test("exactly(ms:) refuses what does not fit; interval, adding and multiplying saturate")
  func checked() {
    #expect(Nanos.exactly(ms: 2) == 2_000_000)
    #expect(Nanos.exactly(ms: 1e13) == nil)
    #expect(Nanos.exactly(ms: .nan) == nil)
    #expect(Nanos.exactly(ms: -.infinity) == nil)
    #expect(Nanos.interval(perSecond: 1_000) == 1_000_000)
    #expect(Nanos.interval(perSecond: 0.001) == 1_000_000_000_000)
    #expect(Nanos.interval(perSecond: 1e12) == 1)
    #expect(Nanos.interval(perSecond: 0) == Nanos.max)
    #expect(Nanos.interval(perSecond: .nan) == Nanos.max)
    #expect(Nanos.adding(.max, 1) == .max)
    #expect(Nanos.adding(.min, -1) == .min)
    #expect(Nanos.adding(5, -7) == -2)
    #expect(Nanos.multiplying(Nanos.max, by: 3) == .max)
    #expect(Nanos.multiplying(-4, by: Int64.max) == .min)
    #expect(Nanos.multiplying(1_000, by: 1_000) == 1_000_000)
    #expect(Nanos.duration(ms: 1e300) == .nanoseconds(Nanos.max))
    #expect(Nanos.duration(seconds: 1.5) == .milliseconds(1_500))
  }
}
