import Foundation
import KenshoScenario
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The command line cannot be crashed, hung or fooled (issue #14): numbers checked, output
/// escaped, empty folders refused, signals handled.
@Suite("kensho-bench command line: hostile input", .serialized)
struct RobustCommandLineTests {
  let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-robust-\(UUID().uuidString)")

  @Test(
    "numeric options out of range exit 2 naming the option and the range",
    arguments: [
      (["--deadline", "inf"], "--deadline must be a number of seconds from 0.001 to 1000000, got inf"),
      (["--deadline", "1e300"], "--deadline must be a number of seconds from 0.001 to 1000000, got 1e+300"),
      (["--deadline", "nan"], "--deadline must be a number of seconds from 0.001 to 1000000, got nan"),
      (["--deadline", "0"], "--deadline must be a number of seconds from 0.001 to 1000000, got 0.0"),
      (["--deadline=-5"], "--deadline must be a number of seconds from 0.001 to 1000000, got -5.0"),
      (["--adapter-timeout", "nan"], "--adapter-timeout must be a number of seconds from 0.001 to 1000000, got nan"),
      (["--adapter-timeout", "1e7"], "--adapter-timeout must be a number of seconds from 0.001 to 1000000, got"),
      (["--max-regression", "nan"], "--max-regression must be a fraction from 0 to 1000, got nan"),
      (["--max-regression", "1e300"], "--max-regression must be a fraction from 0 to 1000, got 1e+300"),
      (["--max-regression=-0.5"], "--max-regression must be a fraction from 0 to 1000, got -0.5"),
      (["--seed", "9223372036854775808"], "--seed must be an integer from 0 to 9223372036854775807"),
      (["--seed", "18446744073709551616"], "--seed"),
      (["--seed", "1e3"], "--seed"),
    ])
  func optionRanges(_ arguments: [String], _ message: String) throws {
    let r = try kenshoBench(["run", "Scenarios/ordering-seed.json", "--out", out.path] + arguments)
    #expect(r.code == 2, "\(arguments): \(r.stderr)")
    #expect(r.stderr.contains(message), "\(arguments): \(r.stderr)")
    #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("kensho-report.json").path))
  }

  @Test("a path that holds no scenario exits 2: validate, run and list on an empty folder")
  func emptyFolder() throws {
    let empty = out.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    for command in [["validate", empty.path], ["run", empty.path, "--out", out.path], ["list", empty.path]] {
      let r = try kenshoBench(command)
      #expect(r.code == 2, "\(command)")
      #expect(
        r.stderr.contains("\(empty.path): $: expected a folder holding scenario files (*.json), found no .json file"),
        "\(command): \(r.stderr)")
    }
  }

  @Test("validate refuses a FIFO or a device at once instead of reading it forever")
  func fifo() throws {
    let zero = try kenshoBench(["validate", "/dev/zero"])
    #expect(zero.code == 2)
    #expect(zero.stderr.contains("/dev/zero: $: expected a regular file, found a special file"), "\(zero.stderr)")
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    let fifo = out.appendingPathComponent("pipe.json").path
    #expect(mkfifo(fifo, 0o600) == 0)
    let r = try kenshoBench(["validate", fifo])
    #expect(r.code == 2)
    #expect(r.stderr.contains("\(fifo): $: expected a regular file, found a special file"), "\(r.stderr)")
  }

  @Test("member names and values cannot inject lines or escape codes into stderr")
  func problemsAreEscaped() throws {
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    let file = out.appendingPathComponent("evil.json")
    let forged = "x\nerror: /etc/passwd: expected nothing, found nothing"
    try JSONSerialization.data(withJSONObject: [
      "format": "kensho-scenario/1", "name": "evil\u{1B}[2J",
      "agents": [["name": "p", "methods": [forged: ["chunks": "\u{1B}]0;title\u{7}"]]], ["name": "c\u{9B}1m"]],
      "workload": [["consumers": "c", "producers": "p", "method": "m"]],
      "expect": [["check": "ordered_delivery\u{202E}"]], forged: 1,
    ]).write(to: file)
    let r = try kenshoBench(["validate", file.path])
    #expect(r.code == 2)
    let lines = r.stderr.split(separator: "\n")
    #expect(lines.count >= 4)
    for line in lines {
      #expect(line.hasPrefix("error: \(file.path): $"), "\(line)")
      #expect(!line.unicodeScalars.contains(where: SafeText.needsEscape), "\(line)")
    }
    #expect(!r.stderr.contains("\nerror: /etc/passwd"))
    #expect(r.stderr.contains("$[\"x\\nerror: /etc/passwd: expected nothing, found nothing\"]: expected one of the"))
  }

  @Test("arguments echoed in usage errors are escaped too")
  func usageErrorsAreEscaped() throws {
    let r = try kenshoBench(["run", "Scenarios/ordering-seed.json", "--format", "pdf\u{1B}[31m\nerror: fake"])
    #expect(r.code == 2)
    #expect(!r.stderr.unicodeScalars.contains("\u{1B}"), "\(r.stderr)")
    #expect(!r.stderr.contains("\nerror: fake"), "\(r.stderr)")
    #expect(r.stderr.contains("pdf\\u001B[31m\\nerror: fake"), "\(r.stderr)")
    let unknown = try kenshoBench(["run", "--\u{1B}[2Jflag\nError: fake"])
    #expect(unknown.code == 2)
    #expect(!unknown.stderr.unicodeScalars.contains("\u{1B}"), "\(unknown.stderr)")
    #expect(!unknown.stderr.contains("\nError: fake"), "\(unknown.stderr)")
  }

  @Test("a scenario too large for this machine is refused before it runs, with the estimate")
  func tooLargeForTheMachine() throws {
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    let file = out.appendingPathComponent("huge.json")
    try JSONSerialization.data(withJSONObject: [
      "format": "kensho-scenario/1", "name": "huge",
      "agents": [
        ["name": "p", "methods": ["m": ["chunks": 1, "content": ["kind": "binary", "size": 64 << 20]]]],
        ["name": "c"],
      ],
      "workload": [["consumers": "c", "producers": "p", "method": "m", "streams": 10_000_000]],
      "expect": [["check": "ordered_delivery"]],
    ]).write(to: file)
    for command in [["validate", file.path], ["run", file.path, "--out", out.path]] {
      let r = try kenshoBench(command)
      #expect(r.code == 2, "\(command)")
      #expect(r.stderr.contains("\(file.path): $.workload: expected a run that fits in"), "\(r.stderr)")
      #expect(r.stderr.contains("found an estimated"), "\(r.stderr)")
    }
  }
}

/// Starts `kensho-bench` with `arguments`; returns the process.
func startKenshoBench(_ arguments: [String], stderr: Pipe? = nil) throws -> Process {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: builtProduct("kensho-bench"))
  process.arguments = arguments
  process.currentDirectoryURL = packageRoot
  process.standardOutput = FileHandle.nullDevice
  process.standardError = stderr ?? FileHandle.nullDevice
  try process.run()
  return process
}

/// Waits up to `seconds` for `process` to end; returns how long it took, or nil.
func waitForExit(_ process: Process, within seconds: Double) -> Double? {
  let start = Date()
  while process.isRunning {
    if Date().timeIntervalSince(start) > seconds { return nil }
    Thread.sleep(forTimeInterval: 0.01)
  }
  return Date().timeIntervalSince(start)
}

@Suite("kensho-bench signals", .serialized)
struct SignalTests {
  let out = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-signal-\(UUID().uuidString)")

  @Test("SIGTERM stops a run within 2 s and writes every report, marked incomplete", arguments: [SIGTERM, SIGINT])
  func stopsWithinTwoSeconds(_ signal: Int32) throws {
    let process = try startKenshoBench(["Scenarios/soak-long-streams.json", "--out", out.path])
    Thread.sleep(forTimeInterval: 1.5)
    kill(process.processIdentifier, signal)
    let took = waitForExit(process, within: 10)
    if took == nil {
      process.terminate()
      process.waitUntilExit()
    }
    #expect((took ?? 99) < 2, "stopped after \(took.map { "\($0) s" } ?? "more than 10 s")")
    #expect(process.terminationReason == .exit)
    #expect(process.terminationStatus == 1)
    let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
    let data = try Data(contentsOf: out.appendingPathComponent("kensho-report.json"))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(json["complete"] as? Bool == false)
    #expect(json["interruptedBy"] as? String == name)
    let scenarios = try #require(json["scenarios"] as? [[String: Any]])
    #expect((scenarios.first?["error"] as? String)?.hasPrefix("interrupted") == true, "\(scenarios)")
    let xml = try String(contentsOf: out.appendingPathComponent("kensho-junit.xml"), encoding: .utf8)
    let doc = try XMLDocumentParser(xml)
    #expect(doc.count("error") >= 1)
    #expect(xml.contains("the run was interrupted by \(name)"))
    let html = try String(contentsOf: out.appendingPathComponent("kensho-report.html"), encoding: .utf8)
    #expect(html.contains("Incomplete run"))
  }

  @Test("a second signal exits at once with 128 + its number", arguments: [SIGTERM, SIGINT])
  func secondSignalExitsAtOnce(_ signal: Int32) throws {
    let process = try startKenshoBench(["Scenarios/soak-long-streams.json", "--out", out.path])
    Thread.sleep(forTimeInterval: 1)
    kill(process.processIdentifier, signal)
    Thread.sleep(forTimeInterval: 0.2)
    kill(process.processIdentifier, signal)
    let took = waitForExit(process, within: 10)
    if took == nil {
      process.terminate()
      process.waitUntilExit()
    }
    #expect((took ?? 99) < 0.5, "exited after \(took.map { "\($0) s" } ?? "more than 10 s")")
    #expect(process.terminationReason == .exit)
    #expect(process.terminationStatus == 128 + signal)
  }

  @Test("SIGTERM kills the implementation's processes and theirs, in their own process groups too")
  func childrenAreKilled() throws {
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    let pids = out.appendingPathComponent("pids")
    let adapter = out.appendingPathComponent("adapter.sh")
    // An implementation that never answers, with a child in its group and one in a group of its own.
    try Data(
      """
      #!/bin/sh
      sleep 300 &
      echo $! >> \(pids.path)
      setsid sleep 300 &
      echo $! >> \(pids.path)
      echo $$ >> \(pids.path)
      wait

      """.utf8
    ).write(to: adapter)
    #expect(chmod(adapter.path, 0o755) == 0)
    let process = try startKenshoBench([
      "Scenarios/ordering-seed.json", "--out", out.path, "--impl", adapter.path, "--adapter-timeout", "60",
    ])
    var written: [pid_t] = []
    for _ in 0..<500 where written.count < 3 {
      Thread.sleep(forTimeInterval: 0.01)
      written = ((try? String(contentsOf: pids, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
        pid_t($0)
      }
    }
    #expect(written.count == 3, "the adapter did not start")
    kill(process.processIdentifier, SIGTERM)
    let took = waitForExit(process, within: 10)
    if took == nil {
      process.terminate()
      process.waitUntilExit()
    }
    #expect((took ?? 99) < 2)
    Thread.sleep(forTimeInterval: 0.2)
    for pid in written {
      #expect(!Self.alive(pid), "process \(pid) outlived the run")
    }
  }

  /// Whether `pid` runs (a zombie does not).
  static func alive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    guard let close = stat.lastIndex(of: ")") else { return false }
    return !stat[stat.index(after: close)...].hasPrefix(" Z")
  }
}
