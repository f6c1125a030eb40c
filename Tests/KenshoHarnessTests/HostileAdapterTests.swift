import Foundation
import KenshoHarness
import KenshoScenario
import KenshoVerdict
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

// Issue #14: a harness that cannot be crashed, hung or fooled. Each test runs a scenario against
// Tests/Fixtures/hostile-adapter.py, a proxy around the reference adapter that misbehaves in one
// way, and asserts the verdict (ERROR), the message (it names what the adapter did), the wall
// time (within the deadline + 5 s) and that no process it started is left.
//
// Each run happens in a child process of the test (an exit test), so that a harness that traps
// fails its own test instead of ending the whole test run; the child reports the result on its
// stdout.

let hostileFixture = packageRoot.appendingPathComponent("Tests/Fixtures/hostile-adapter.py").path
let hasPython = ["/usr/bin/python3", "/usr/local/bin/python3"].contains {
  FileManager.default.isExecutableFile(atPath: $0)
}

/// What a hostile run gave, as the child process reports it.
struct HostileOutcome: Codable, Sendable {
  var verdict: String
  var rules: [String]
  var error: String?
  var seconds: Double
  /// Peak resident memory of the child (the harness), in MiB.
  var peakMiB: Int
  var logBytes: Int
  var logTail: String
  /// Processes of the adapter that were still there when the run returned, as seen from the
  /// harness's process (its own zombies count).
  var leftInside: [String]
}

/// The hostile adapter's command: `mode` with `extra` arguments, around the reference adapter.
func hostileCommand(_ mode: String, tag: String, _ extra: [String] = []) -> String {
  ShellWords.join(
    ["python3", hostileFixture, "--misbehave", mode, "--tag", tag] + extra + ["--", builtProduct("kensho-ref-adapter")])
}

/// Processes whose command line or environment carries `tag`, with their state; the zombies of
/// other parents (waiting for init) are gone, not left.
func processesTagged(_ tag: String) -> [String] {
  let me = getpid()
  var found: [String] = []
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  for entry in entries where entry.allSatisfy(\.isNumber) {
    let base = "/proc/\(entry)/"
    guard let cmdline = FileManager.default.contents(atPath: base + "cmdline") else { continue }
    let environ = FileManager.default.contents(atPath: base + "environ") ?? Data()
    let marker = Data(tag.utf8)
    guard cmdline.range(of: marker) != nil || environ.range(of: marker) != nil else { continue }
    guard let stat = try? String(contentsOfFile: base + "stat", encoding: .utf8) else { continue }
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    let fields = stat[(stat.lastIndex(of: ")").map { stat.index(after: $0) } ?? stat.startIndex)...]
      .split(separator: " ")
    let state = fields.first.map(String.init) ?? "?"
    let ppid = fields.dropFirst().first.flatMap { Int32($0) } ?? 0
    if state == "Z" && ppid != me { continue }
    let command = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    found.append("\(entry) [\(state), parent \(ppid)] \(command.prefix(100))")
  }
  return found
}

/// `processesTagged(tag)` once it is empty, or after `seconds` (a SIGKILL takes a moment).
func leftovers(_ tag: String, within seconds: Double = 2) -> [String] {
  let end = Date().addingTimeInterval(seconds)
  var left = processesTagged(tag)
  while !left.isEmpty && Date() < end {
    usleep(50_000)
    left = processesTagged(tag)
  }
  return left
}

func peakResidentMiB() -> Int {
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
  return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
}

/// Runs `scenario` against `command` with the given deadlines and reports a ``HostileOutcome``
/// on stdout, after a marker line. Runs in the exit test's child process.
func runHostile(scenario name: String, command: String, tag: String, adapterSeconds: Int, wallSeconds: Int) {
  let logged = LogCounter()
  var options = RunOptions()
  options.adapterCommand = command
  options.adapterDeadline = .seconds(adapterSeconds)
  options.adapterLog = { logged.add($0) }
  let started = ContinuousClock.now
  let result: ScenarioResult
  do {
    let scenario = try ScenarioLoader.load(file: packageRoot.appendingPathComponent("Scenarios/\(name).json").path)
    result = ScenarioRunner(wallDeadline: .seconds(wallSeconds), options: options).run(scenario)
  } catch {
    print("cannot load \(name): \(error)")
    exit(2)
  }
  let elapsed = ContinuousClock.now - started
  let (bytes, tail) = logged.snapshot
  let outcome = HostileOutcome(
    verdict: "\(result.verdict)", rules: result.checks.map(\.rule), error: result.error,
    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
    peakMiB: peakResidentMiB(), logBytes: bytes, logTail: tail, leftInside: leftovers(tag))
  guard let data = try? JSONEncoder().encode(outcome) else { exit(3) }
  FileHandle.standardOutput.write(Data("\nKENSHO-OUTCOME ".utf8) + data + Data("\n".utf8))
  exit(0)
}

final class LogCounter: Sendable {
  private let state = Mutex((bytes: 0, tail: ""))
  func add(_ text: String) {
    state.withLock { s in
      s.bytes += text.utf8.count
      let new = Array(text.utf8.suffix(2000))
      s.tail = String(decoding: Array(s.tail.utf8.suffix(2000 - new.count)) + new, as: UTF8.self)
    }
  }
  var snapshot: (Int, String) { state.withLock { ($0.bytes, $0.tail) } }
}

/// What a hostile adapter must lead to: the verdict ERROR on the ADAPTER check, a message that
/// holds every one of `says`, no later than `within` seconds, nothing left running.
struct Hostile: CustomTestStringConvertible, Sendable {
  var mode: String
  var extra: [String] = []
  var says: [String]
  var adapterSeconds = 3
  var wallSeconds = 20
  /// The bound on the wall time, from the deadline that should stop the run.
  var within: Double { Double(adapterSeconds) + 5 }
  var scenario = "ordering-seed"
  /// The checks the result must hold; `nil` when how the harness reports it is open.
  var rules: [String]? = ["ADAPTER"]
  var note: String { ([mode] + extra).joined(separator: " ") }
  var testDescription: String { note }
}

/// Runs `h` in a child process and checks everything the issue asks of it.
func expectHostile(_ h: Hostile, within bound: Double? = nil, sourceLocation: SourceLocation = #_sourceLocation)
  async throws
{
  let tag = "kensho-hostile-\(UUID().uuidString)"
  let command = hostileCommand(h.mode, tag: tag, h.extra)
  let scenario = h.scenario
  let adapterSeconds = h.adapterSeconds
  let wallSeconds = h.wallSeconds
  let started = Date()
  let exit = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
    [
      scenario = scenario as String, command = command as String, tag = tag as String,
      adapterSeconds = adapterSeconds as Int, wallSeconds = wallSeconds as Int
    ] in
    runHostile(
      scenario: scenario, command: command, tag: tag, adapterSeconds: adapterSeconds, wallSeconds: wallSeconds)
  }
  let seconds = Date().timeIntervalSince(started)
  // Whatever happened to the harness, nothing of the adapter may be left.
  let left = leftovers(tag)
  #expect(left.isEmpty, "\(h.note): processes left behind: \(left)", sourceLocation: sourceLocation)
  for line in left { _ = line.split(separator: " ").first.flatMap { Int32($0) }.map { kill($0, SIGKILL) } }

  let text = String(decoding: exit?.standardOutputContent ?? [], as: UTF8.self)
  guard let json = text.split(separator: "\n").last(where: { $0.hasPrefix("KENSHO-OUTCOME ") })?.dropFirst(15),
    let outcome = try? JSONDecoder().decode(HostileOutcome.self, from: Data(json.utf8))
  else {
    let status = exit.map { "with \($0.exitStatus)" } ?? "abnormally (its exit status is reported above)"
    let comment = "\(h.note): the harness did not finish the run: its process ended \(status) after \(Int(seconds)) s"
    Issue.record("\(comment); output: \(text.suffix(500))", sourceLocation: sourceLocation)
    return
  }
  let limit = bound ?? h.within
  #expect(outcome.verdict == "error", "\(h.note): verdict \(outcome.verdict)", sourceLocation: sourceLocation)
  if let rules = h.rules {
    #expect(outcome.rules == rules, "\(h.note): checks \(outcome.rules)", sourceLocation: sourceLocation)
  }
  let message = outcome.error ?? ""
  for part in h.says {
    #expect(message.contains(part), "\(h.note): message lacks \"\(part)\": \(message)", sourceLocation: sourceLocation)
  }
  #expect(
    outcome.seconds <= limit, "\(h.note): took \(outcome.seconds) s, more than \(limit) s",
    sourceLocation: sourceLocation)
  #expect(
    outcome.leftInside.isEmpty, "\(h.note): left after the run: \(outcome.leftInside)", sourceLocation: sourceLocation)
  print(
    "hostile \(h.note): \(outcome.verdict) in \(String(format: "%.2f", outcome.seconds)) s, peak \(outcome.peakMiB) MiB, "
      + "\(outcome.logBytes) B logged: \(message.prefix(300))")
}

@Suite("Hostile adapters (issue #14)", .serialized, .enabled(if: hasPython, "needs python3"))
struct HostileAdapterTests {
  /// Misbehaviours the adapter layer (AdapterProcess) must catch.
  static let transport: [Hostile] = [
    Hostile(mode: "stdout-flood", says: ["\"deliver\"", "events"]),
    Hostile(mode: "stderr-flood", says: ["flooded stderr"]),
    Hostile(mode: "close-stdout", says: ["closed its stdout but kept running"]),
    Hostile(mode: "hang", says: ["did not answer \"call\" within 3.0 seconds"]),
    Hostile(mode: "garbage", says: ["not a JSON object", "this is not JSON"]),
    Hostile(mode: "huge", says: ["longer than 64 MiB"]),
    Hostile(mode: "wrong-version", says: ["speaks adapter protocol \"kensho-adapter/0\""]),
    Hostile(mode: "crash", says: ["exited (status 3)", "\"deliver\""]),
    Hostile(mode: "wrong-id", says: ["acknowledged id", "\"register\""]),
    // Real time: operations pipelined, lines read by a thread of their own.
    Hostile(
      mode: "wrong-id", says: ["acknowledged id", "\"register\"", "in the order of operations"],
      scenario: "realtime-open-load"),
    Hostile(mode: "garbage", says: ["not a JSON object", "this is not JSON"], scenario: "realtime-open-load"),
    Hostile(mode: "hang", says: ["did not acknowledge \"call\" within 3.0 seconds"], scenario: "realtime-open-load"),
    Hostile(mode: "crash", says: ["exited (status 3)"], scenario: "realtime-open-load"),
    Hostile(
      mode: "timer", extra: ["--value", "1e300"],
      says: ["stdout line", "$.nextTimerMs: expected a time in ms from 0 to 9000000000000 or null, found 1e+300"]),
    Hostile(mode: "timer", extra: ["--value", "1e999"], says: ["nextTimerMs"]),
    Hostile(
      mode: "timer", extra: ["--value", "-5"],
      says: ["$.nextTimerMs: expected a time in ms from 0 to 9000000000000 or null, found -5"]),
    Hostile(mode: "timer", extra: ["--value", "NaN"], says: ["not a JSON object", "nextTimerMs"]),
    Hostile(
      mode: "timer", extra: ["--value", "\"soon\""],
      says: ["$.nextTimerMs: expected a time in ms from 0 to 9000000000000 or null, found \"soon\""]),
  ]

  @Test("a hostile adapter ends its scenario as ERROR, in time, with nothing left", arguments: transport)
  func transportMisbehaviour(_ h: Hostile) async throws {
    try await expectHostile(h)
  }

  /// Misbehaviours whose interpretation lives in RemoteBus/ReferenceRun/ScenarioRunner.
  static let interpretation: [Hostile] = [
    // The ack of a `chunks` batch claims more chunks sent than the batch held.
    Hostile(mode: "sent", says: ["sent"]),
    Hostile(mode: "sent", extra: ["--value", "-3"], says: ["sent"]),
    // A `send` event whose message claims to come from a worker of another process.
    Hostile(mode: "impersonate", extra: ["--victim", "consumer"], says: ["sourceWorker", "consumer"]),
    // A callback event for a worker of another process.
    Hostile(mode: "foreign-callback", extra: ["--victim", "consumer"], says: ["consumer", "does not host"]),
    Hostile(mode: "stats-fail", says: ["stats", "stats exploded"]),
    Hostile(mode: "stats-hang", says: ["\"stats\""]),
    // Acks shutdown, then neither it nor its helper process exits.
    // Whether the failure replaces the checks or joins them is the runner's to choose.
    Hostile(mode: "ignore-shutdown", says: ["did not exit"], rules: nil),
  ]

  @Test("a lying adapter ends its scenario as ERROR naming the lie", arguments: interpretation)
  func interpretationMisbehaviour(_ h: Hostile) async throws {
    try await expectHostile(h)
  }

  @Test("an adapter that answers just under the timeout cannot stretch the run past its wall deadline")
  func slowAdapterHoldsWallDeadline() async throws {
    // Each operation takes 1.5 s against a 2 s adapter timeout: legal one by one, but the run
    // (dozens of operations) must stop at its 6 s wall-clock deadline.
    let h = Hostile(
      mode: "slow", extra: ["--delay", "1.5"], says: ["deadline"], adapterSeconds: 2, wallSeconds: 6, rules: nil)
    try await expectHostile(h, within: 6 + 5)
  }
}

/// The same misbehaviours through the command line: only `--deadline` bounds them (the adapter
/// timeout is a minute), and the run must still end with every report written.
@Suite("Hostile adapters through kensho-bench (issue #14)", .serialized, .enabled(if: hasPython, "needs python3"))
struct HostileCommandLineTests {
  @Test(
    "--deadline holds whatever the adapter does: ERROR, every report written and complete, nothing left",
    arguments: ["hang", "stdout-flood", "close-stdout", "stats-hang"])
  func deadlineHolds(_ mode: String) throws {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-hostile-cli-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    let tag = "kensho-hostile-\(UUID().uuidString)"
    let deadline = 4.0
    let started = Date()
    let process = try startKenshoBench([
      "Scenarios/ordering-seed.json", "Scenarios/error-thrown.json", "--out", out.path, "--impl",
      hostileCommand(mode, tag: tag), "--deadline", "\(deadline)", "--adapter-timeout", "60",
    ])
    // Two scenarios, each bounded by the deadline plus the watchdog's 5 s.
    let bound = 2 * (deadline + 5)
    let took = waitForExit(process, within: bound + 10)
    if took == nil {
      process.terminate()
      process.waitUntilExit()
    }
    let seconds = Date().timeIntervalSince(started)
    #expect(took != nil && seconds <= bound, "\(mode): took \(seconds) s, more than \(bound) s")
    #expect(
      process.terminationReason == .exit && process.terminationStatus == 1, "\(mode): exit \(process.terminationStatus)"
    )
    for file in ["kensho-report.json", "kensho-report.html", "kensho-junit.xml"] {
      #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "\(mode): no \(file)")
    }
    let data = try Data(contentsOf: out.appendingPathComponent("kensho-report.json"))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(json["complete"] as? Bool == true, "\(mode)")
    let scenarios = try #require(json["scenarios"] as? [[String: Any]])
    #expect(scenarios.count == 2, "\(mode)")
    for s in scenarios {
      #expect(s["verdict"] as? String == "error", "\(mode): \(s["name"] ?? "?") is \(s["verdict"] ?? "?")")
      #expect(!((s["error"] as? String) ?? "").isEmpty, "\(mode): an ERROR must say why")
    }
    let left = leftovers(tag)
    #expect(left.isEmpty, "\(mode): processes left behind: \(left)")
    for line in left { _ = line.split(separator: " ").first.flatMap { Int32($0) }.map { kill($0, SIGKILL) } }
  }
}
