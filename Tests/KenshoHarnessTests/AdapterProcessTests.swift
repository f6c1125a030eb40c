import Foundation
import KenshoAdapterProtocol
import KenshoProtocol
import KenshoVerdict
import Synchronization
import Testing

@testable import KenshoHarness

#if canImport(Glibc)
  import Glibc
#endif

/// AdapterProcess on its own: process groups, shutdown, killAll, back-pressure, deadlines, logs.
@Suite("Adapter process", .serialized, .enabled(if: hasPython, "needs python3"))
struct AdapterProcessTests {
  static let configuration = AdapterConfiguration(
    workers: ["w"], streamTimeoutMs: 300_000, sweepIntervalMs: 60_000, seed: 1)

  static var reference: String { builtProduct("kensho-ref-adapter") }

  /// Whether `pid` is still there (a zombie counts: it has not been reaped).
  static func exists(_ pid: pid_t) -> Bool {
    FileManager.default.fileExists(atPath: "/proc/\(pid)")
  }

  @Test("a well-behaved adapter shuts down at once, reaped, its group gone")
  func cleanShutdown() throws {
    let process = try AdapterProcess(command: Self.reference, label: "reference", deadline: .seconds(5))
    let hello = try process.hello()
    #expect(hello.name == "kensho-reference")
    let started = ContinuousClock.now
    let problem = process.shutdown()
    #expect(problem == nil)
    #expect(ContinuousClock.now - started < .seconds(1))
    #expect(!process.isRunning)
    #expect(!Self.exists(process.pid))
    // Operations after shutdown fail at once.
    #expect(throws: AdapterFailure.self) { try process.perform(.stats(worker: "w")) }
  }

  @Test("an adapter that ignores shutdown, EOF and SIGTERM is killed with its helper, and says so")
  func ignoredShutdown() throws {
    let tag = "kensho-unit-\(UUID().uuidString)"
    let log = LogCounter()
    let process = try AdapterProcess(
      command: hostileCommand("ignore-shutdown", tag: tag), label: "stubborn", deadline: .seconds(5),
      log: { log.add($0) })
    _ = try process.hello()
    let started = ContinuousClock.now
    let problem = process.shutdown()
    let took = ContinuousClock.now - started
    #expect(problem?.description.contains("stubborn did not exit within 1.0 seconds of acknowledging shutdown") == true)
    #expect(took < .seconds(4), "shutdown took \(took)")
    #expect(leftovers(tag).isEmpty, "left: \(leftovers(tag))")
    #expect(log.snapshot.1.contains("[kensho-bench] stubborn did not exit"))
  }

  @Test("stderr reaches the log line by line, labelled, and its tail ends up in the failure")
  func stderrLogged() throws {
    let log = LogCounter()
    // The proxy refuses an unknown argument on stderr and exits with status 2.
    let process = try AdapterProcess(
      command: "python3 \(hostileFixture) --bogus x", label: "confused", deadline: .seconds(5), log: { log.add($0) })
    let error = #expect(throws: AdapterFailure.self) { try process.hello() }
    let text = error?.description ?? ""
    #expect(text.hasPrefix("confused exited (status 2)"), "\(text)")
    #expect(text.hasSuffix("; stderr: hostile-adapter: unknown argument --bogus"), "\(text)")
    #expect(log.snapshot.1 == "[confused] hostile-adapter: unknown argument --bogus\n")
    #expect(!process.isRunning)
  }

  @Test("a process that never reads its input is a timeout, not a hang of the harness")
  func inputNeverRead() throws {
    let process = try AdapterProcess(command: "sleep 30", label: "sleeper", deadline: .seconds(1))
    let big = JSONValue.string(String(repeating: "x", count: 1 << 20))
    let started = ContinuousClock.now
    let error = #expect(throws: AdapterFailure.self) { try process.perform(.deliver(worker: "w", messages: [big])) }
    #expect(ContinuousClock.now - started < .seconds(3))
    #expect(
      error?.description.contains("sleeper did not read its input (\"deliver\"") == true, "\(error?.description ?? "")")
    #expect(!Self.exists(process.pid))
  }

  @Test("the overall deadline bounds an operation whose own deadline is long")
  func overallDeadline() throws {
    let tag = "kensho-unit-\(UUID().uuidString)"
    let process = try AdapterProcess(
      command: hostileCommand("hang", tag: tag, ["--on", "configure"]), label: "hanger", deadline: .seconds(60),
      until: .now.advanced(by: .seconds(2)))
    _ = try process.hello()
    let started = ContinuousClock.now
    let error = #expect(throws: AdapterFailure.self) { try process.perform(.configure(Self.configuration)) }
    #expect(ContinuousClock.now - started < .seconds(4))
    #expect(error?.description.contains("did not answer \"configure\" before the run's overall deadline") == true)
    #expect(leftovers(tag).isEmpty)
  }

  @Test("one operation's events are capped")
  func eventsCapped() throws {
    var limits = AdapterProcess.Limits()
    limits.maxEventsPerOperation = 1000
    let process = try AdapterProcess(
      command: hostileCommand("stdout-flood", tag: "t", ["--on", "configure"]), label: "flooder",
      deadline: .seconds(20), limits: limits)
    _ = try process.hello()
    let started = ContinuousClock.now
    let error = #expect(throws: AdapterFailure.self) { try process.perform(.configure(Self.configuration)) }
    #expect(ContinuousClock.now - started < .seconds(5))
    #expect(error?.description.contains("flooder flooded stdout: 1001 events") == true, "\(error?.description ?? "")")
    #expect(!Self.exists(process.pid))
  }

  @Test("stderr is bounded: a flood is a failure, the log gets at most the limit")
  func stderrCapped() throws {
    var limits = AdapterProcess.Limits()
    limits.maxStderrBytes = 4 << 20
    let log = LogCounter()
    let process = try AdapterProcess(
      command: hostileCommand("stderr-flood", tag: "t", ["--on", "configure"]), label: "shouter",
      deadline: .seconds(20), log: { log.add($0) }, limits: limits)
    _ = try process.hello()
    let error = #expect(throws: AdapterFailure.self) { try process.perform(.configure(Self.configuration)) }
    #expect(
      error?.description.contains("shouter flooded stderr: more than 4 MiB") == true, "\(error?.description ?? "")")
    let (bytes, tail) = log.snapshot
    // Each line of the log carries the label: a little more than what the process wrote.
    #expect(bytes > 1 << 20 && bytes < 6 << 20, "\(bytes) B logged")
    // Every line labelled (the last may be cut where the flood was stopped).
    let lines = tail.split(separator: "\n").dropFirst()
    #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("[shouter] stderr flood") }, "\(tail)")
    #expect(tail.hasSuffix("\n"))
  }

  @Test("an adapter that cannot start says why")
  func cannotStart() {
    let error = #expect(throws: AdapterFailure.self) {
      try AdapterProcess(command: "/nonexistent/adapter --flag", label: "x", deadline: .seconds(1))
    }
    #expect(error?.description == "cannot start /nonexistent/adapter --flag: No such file or directory")
    let empty = #expect(throws: AdapterFailure.self) {
      try AdapterProcess(command: "", label: "x", deadline: .seconds(1))
    }
    #expect(empty?.description == "cannot start x: the command is empty")
    let unclosed = #expect(throws: AdapterFailure.self) {
      try AdapterProcess(command: "adapter 'unclosed", label: "x", deadline: .seconds(1))
    }
    #expect(unclosed?.description == "cannot start x: a single quote (') is not closed in \"adapter 'unclosed\"")
  }

  @Test("killAll kills every adapter group, helpers included, at once")
  func killAllGroups() async {
    // In a child process of its own: killAll would kill the adapters of tests running alongside.
    let tag = "kensho-unit-\(UUID().uuidString)"
    await #expect(processExitsWith: .success) { [tag = tag as String] in
      var processes: [AdapterProcess] = []
      for i in 0..<3 {
        guard
          let p = try? AdapterProcess(
            command: hostileCommand("ignore-shutdown", tag: tag), label: "p\(i)", deadline: .seconds(5)),
          (try? p.hello()) != nil
        else { exit(2) }
        // Up to shutdown, which it will not answer, it relays to the reference adapter.
        processes.append(p)
      }
      guard processesTagged(tag).count >= 6, AdapterProcess.liveGroups == 3 else { exit(3) }
      AdapterProcess.killAll()
      guard leftovers(tag, within: 2).allSatisfy({ $0.contains("[Z,") }) else { exit(4) }
      for p in processes {
        guard (try? p.perform(.stats(worker: "w"))) == nil else { exit(5) }
      }
      exit(AdapterProcess.liveGroups == 0 ? 0 : 6)
    }
    #expect(leftovers(tag).isEmpty)
  }

  @Test("SIGPIPE and SIGINT ignored by the harness are default again in the adapter")
  func signalsReset() throws {
    let previous = signal(SIGINT, SIG_IGN)
    defer { signal(SIGINT, previous) }
    let process = try AdapterProcess(command: "sleep 30", label: "sleeper", deadline: .seconds(1))
    let status = (try? String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)) ?? ""
    let ignored = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }?.split(separator: "\t").last
    let mask = UInt64(ignored.map(String.init) ?? "", radix: 16) ?? .max
    #expect(mask & (1 << (UInt64(SIGINT) - 1)) == 0)
    #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) == 0)
    // Its own process group.
    let stat = (try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat[(stat.lastIndex(of: ")").map { stat.index(after: $0) } ?? stat.startIndex)...]
      .split(separator: " ")
    #expect(fields.count > 2 && Int32(fields[2]) == process.pid)
    process.kill()
    #expect(!Self.exists(process.pid))
  }
}

/// The pure steps from bytes to events.
@Suite("Adapter lines")
struct AdapterLineTests {
  func split(_ chunks: [String], maxLine: Int = 64) throws -> [String] {
    var splitter = LineSplitter(maxLine: maxLine)
    var lines: [String] = []
    for chunk in chunks {
      try Array(chunk.utf8).withUnsafeBytes { b in
        try splitter.feed(b) { lines.append(String(decoding: $0, as: UTF8.self)) }
      }
    }
    if let last = splitter.finish() { lines.append(String(decoding: last, as: UTF8.self)) }
    return lines
  }

  @Test("lines split across reads, blank lines skipped, the last one without newline kept")
  func splitting() throws {
    #expect(
      try split(["{\"a\":", "1}\n\n  \r\n{\"b\"", ":2}\r\n", "{\"c\":3}"]) == ["{\"a\":1}", "{\"b\":2}\r", "{\"c\":3}"])
  }

  @Test("a line over the limit is refused, with or without its newline")
  func tooLong() {
    #expect(throws: LineSplitter.TooLong.self) { try split([String(repeating: "x", count: 65) + "\n"]) }
    #expect(throws: LineSplitter.TooLong.self) {
      try split([String(repeating: "x", count: 40), String(repeating: "x", count: 40)])
    }
    #expect((try? split([String(repeating: "x", count: 64) + "\n"])) == [String(repeating: "x", count: 64)])
  }

  @Test("what each kind of bad line is called")
  func problems() {
    func problem(_ text: String, answering op: String = "advance") -> String {
      switch AdapterProcess.line(from: Array(text.utf8), answering: op, source: "stdout line 2") {
      case .success: return "ok"
      case .failure(let p): return p.description
      }
    }
    #expect(problem("{\"event\":\"ack\",\"id\":1}") == "ok")
    #expect(problem("[1]").hasPrefix("wrote a line that is not a JSON object (array): [1]"))
    #expect(problem("{\"id\":1}").hasPrefix("wrote an object without \"event\""))
    #expect(problem("{\"event\":7}").hasPrefix("wrote an object whose \"event\" is not a string"))
    #expect(
      problem("{\"event\":\"send\",\"message\":{\"payload\":[1,-1e999]}}").hasPrefix(
        "wrote a number out of range at $.message.payload[1]"))
    // A line that breaks the declaration names the line, the member and what was expected.
    #expect(
      problem("{\"event\":\"ack\",\"id\":1,\"nextTimerMs\":\"soon\"}")
        == "wrote a line that breaks kensho-adapter/1: stdout line 2: $.nextTimerMs: expected a time in ms from 0 to "
        + "9000000000000 or null, found \"soon\": {\"event\":\"ack\",\"id\":1,\"nextTimerMs\":\"soon\"}")
    #expect(
      problem("{\"event\":\"ack\",\"id\":1}", answering: "call").hasPrefix(
        "wrote a line that breaks kensho-adapter/1: stdout line 2: $.streamId: expected a string"))
    #expect(
      problem("{\"event\":\"ack\",\"id\":1,\"protocol\":\"kensho-adapter/0\"}", answering: "hello")
        == "speaks adapter protocol \"kensho-adapter/0\"; this harness speaks \"kensho-adapter/1\"")
    // An ack for a later operation (one ack went missing) says so, not that its members are
    // out of place for the operation waiting.
    let skipped = AdapterProcess.line(
      from: Array(#"{"event":"ack","id":8,"result":"ok"}"#.utf8), answering: "deliver", id: 7, source: "stdout line 2")
    if case .failure(let p) = skipped {
      #expect(p.description == "acknowledged id 8, expected 7 (\"deliver\"): acks come in the order of operations")
    } else {
      Issue.record("an ack for id 8 was read as the ack of operation 7")
    }
    let matching = AdapterProcess.line(
      from: Array(#"{"event":"ack","id":7}"#.utf8), answering: "deliver", id: 7, source: "s")
    #expect((try? matching.get()) != nil)
    // Control characters and invalid UTF-8 are shown escaped, never copied into a report.
    let p = problem("nope\u{1}\u{7f}") + problem(String(decoding: [0x6E, 0xFF, 0xFE], as: UTF8.self))
    #expect(p.contains("nope\\u{1}\\u{7f}"))
    #expect(!p.unicodeScalars.contains { $0.value < 0x20 })
  }

  @Test("the stderr tail is a ring: the last bytes, never more")
  func tail() {
    var tail = Tail(capacity: 8)
    for text in ["abc", "defgh", "ijklmnopqrstuvwxyz", "12"] {
      Array(text.utf8).withUnsafeBytes { tail.append($0) }
    }
    #expect(String(decoding: tail.contents, as: UTF8.self) == "uvwxyz12")
  }

  @Test("stderr lines are labelled; a partial line waits, up to 4 KiB")
  func stderrLines() {
    var lines = StderrLines(label: "p")
    func feed(_ s: String) -> String? { Array(s.utf8).withUnsafeBytes { lines.feed($0) } }
    #expect(feed("one\ntw") == "[p] one\n")
    #expect(feed("o\nthree") == "[p] two\n")
    #expect(lines.finish() == "[p] three\n")
    #expect(feed(String(repeating: "x", count: 5000))?.count == 5005)
  }
}

@Suite("Child processes get nothing of the harness's but their pipes")
struct SpawnDescriptorTests {
  @Test("a child holds only stdin, stdout and stderr, though the harness has descriptors open without close-on-exec")
  func onlyStandardDescriptors() throws {
    // A socket without close-on-exec, as SwiftNIO's accepted connections are: a child holding
    // the embedded relay's end of a connection kept it open after the relay closed it.
    let leaky = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(leaky >= 0)
    defer { close(leaky) }
    let started = try Spawn.start(["/bin/sh", "-c", "ls /proc/self/fd"])
    close(started.stdin)
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = buffer.withUnsafeMutableBytes { read(started.stdout, $0.baseAddress, 4096) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { break }
      output += buffer[0..<n]
    }
    close(started.stdout)
    close(started.stderr)
    var status: Int32 = 0
    _ = waitpid(started.pid, &status, 0)
    // `ls` opens /proc/self/fd itself (fd 3); anything else came from the harness.
    let fds = String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
    #expect(fds.contains(0) && fds.contains(1) && fds.contains(2), "\(fds)")
    #expect(!fds.contains(Int(leaky)) || Int(leaky) == 3, "the child holds the harness's socket: \(fds)")
    #expect(fds.filter { $0 > 3 }.isEmpty, "the child holds \(fds)")
  }
}
