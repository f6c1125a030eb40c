import ArgumentParser
import Foundation
import KenshoHarness
import KenshoRelay
import KenshoReport
import KenshoScenario
import Synchronization

extension KenshoBench {
  /// `kensho-bench relay`: the Swift relay (PROTOCOL.md §11), standalone.
  struct Relay: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run the WebSocket relay (KSP-11) until SIGINT or SIGTERM.",
      discussion: """
        Prints one line, `listening ws://HOST:PORT/`, once it accepts connections; on SIGINT or
        SIGTERM it closes every connection, prints its counters as one JSON line on stderr and
        exits 0. Without --listen it listens on 127.0.0.1:$KENSHO_RELAY_PORT (the port
        --relay-cmd hands to the relay it starts), else on 127.0.0.1:8080; KENSHO_RELAY_TOKEN
        gives the token when --token is absent.
        """)

    @Option(help: "HOST:PORT to listen on (port 0: any free port).")
    var listen: String?

    @Option(help: "Require this token from every client (`?token=` or `Authorization: Bearer`).")
    var token: String?

    @Option(help: "Largest message a client may send, in bytes; a larger one closes it with 1009.")
    var maxFrameBytes = RelayConfiguration().maxFrameBytes

    @Option(help: "Bytes queued for one receiver before frames to it are dropped (KSP-11.6).")
    var maxBufferedBytes = RelayConfiguration().maxBufferedBytes

    @Option(help: "Record every frame into this folder, for `kensho-bench judge` (KSP-1.1 counted live).")
    var record: String?

    func validate() throws {
      guard (125...(1 << 30)).contains(maxFrameBytes) else {
        throw ValidationError("--max-frame-bytes must be within 125...1073741824, not \(maxFrameBytes)")
      }
      guard (1024...(1 << 34)).contains(maxBufferedBytes) else {
        throw ValidationError("--max-buffered-bytes must be within 1024...17179869184, not \(maxBufferedBytes)")
      }
      _ = try address()
    }

    /// The host and port to listen on, from --listen or the environment.
    func address() throws -> (host: String, port: Int) {
      let environment = ProcessInfo.processInfo.environment
      guard let listen else {
        let port = environment["KENSHO_RELAY_PORT"] ?? "8080"
        guard let number = Int(port), (0...65535).contains(number) else {
          throw ValidationError("KENSHO_RELAY_PORT must be a port number (0...65535), not '\(port)'")
        }
        return ("127.0.0.1", number)
      }
      guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
        (0...65535).contains(port)
      else {
        throw ValidationError("--listen expects HOST:PORT with a port in 0...65535, not '\(listen)'")
      }
      var host = String(listen[..<colon])
      if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      guard !host.isEmpty else { throw ValidationError("--listen expects HOST:PORT; the host is missing") }
      return (host, port)
    }

    func run() throws {
      let (host, port) = try address()
      var configuration = RelayConfiguration(
        token: token ?? ProcessInfo.processInfo.environment["KENSHO_RELAY_TOKEN"],
        maxFrameBytes: maxFrameBytes, maxBufferedBytes: maxBufferedBytes)
      configuration.name = "kensho-bench \(KenshoVersion.current)"
      let settings = configuration
      var recorder: RelayRecording.Recorder?
      if let record {
        do {
          recorder = try RelayRecording.Recorder(directory: record)
        } catch {
          printError("error: --record \(record): \(error)")
          throw Exit.badInput
        }
      }
      let policy = recorder
      let started = blockingResult {
        try await RelayServer.start(host: host, port: port, configuration: settings, policy: policy)
      }
      let relay: RelayServer
      switch started {
      case .success(let r): relay = r
      case .failure(let error):
        printError("error: cannot listen on \(host):\(port): \(error)")
        throw ExitCode(1)
      }
      print("listening \(relay.url)")
      fflush(nil)
      let stop = DispatchSemaphore(value: 0)
      let interruption = Interruption.install { _ in stop.signal() }
      // A recording is flushed every second, so that a relay killed outright loses little.
      while stop.wait(timeout: .now() + 1) == .timedOut { recorder?.flush() }
      _ = interruption
      let stats = blockingResult { () async -> RelayStats in
        let stats = await relay.stats()
        await relay.close()
        return stats
      }
      if case .success(let stats) = stats, let json = try? JSONEncoder().encode(stats) {
        FileHandle.standardError.write(json + Data("\n".utf8))
      }
      if let recorder {
        recorder.close()
        let (frames, invalid) = recorder.counts
        printError(
          "recorded \(frames) frames in \(record ?? ""), \(invalid) of them not a valid KenshoMessage (KSP-1.1)")
      }
    }
  }
}

extension KenshoBench {
  /// `kensho-bench relay-load`: the capacity of one or more relays, side by side.
  struct RelayLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "relay-load",
      abstract: "Ramp clients and offered rate against relays until p99 passes a bound or frames are lost.",
      discussion: """
        Each relay is tried at each client count: every client sends binary frames stamped with
        their scheduled time (an open model), each reaches every other client, and the rate
        doubles per step until p99 latency passes --p99-ms or a frame is lost. Writes
        relay-load.json and relay-load.html (capacity table and charts) to --out. Without
        --relay-url or --relay-cmd, an embedded Swift relay is measured.
        """)

    @Option(help: "A relay to measure, by address (repeatable).")
    var relayUrl: [String] = []

    @Option(help: "A relay to measure, started by this command as for `run --relay-cmd` (repeatable).")
    var relayCmd: [String] = []

    @Option(help: "The token the relays require.")
    var relayToken: String?

    @Option(help: "Client counts, comma-separated.")
    var clients = "2,10,50"

    @Option(help: "Seconds each step sends for.")
    var stepSeconds: Double = 2

    @Option(help: "The p99 latency bound in ms.")
    var p99Ms: Double = 50

    @Option(help: "The first offered rate, frames/s (doubled each step).")
    var startRate: Double = 1_000

    @Option(help: "Folder for relay-load.json and relay-load.html.")
    var out = "Reports"

    func counts() throws -> [Int] {
      let parts = clients.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
      let counts = parts.compactMap { Int($0) }
      guard !counts.isEmpty, counts.count == parts.count, counts.allSatisfy({ (2...500).contains($0) }) else {
        throw ValidationError("--clients expects client counts from 2 to 500, comma-separated, not '\(clients)'")
      }
      return counts
    }

    func validate() throws {
      _ = try counts()
      try OptionRanges.check("--step-seconds", stepSeconds, in: 0.1...600, "a number of seconds")
      try OptionRanges.check("--p99-ms", p99Ms, in: 0.01...600_000, "a number of milliseconds")
      try OptionRanges.check("--start-rate", startRate, in: 1...10_000_000, "frames per second")
      for url in relayUrl {
        do { _ = try RelayURL(url) } catch { throw ValidationError("--relay-url: \(error)") }
      }
    }

    func run() throws {
      var load = RelayLoad()
      load.clientCounts = try counts()
      load.stepSeconds = stepSeconds
      load.p99Bound = .nanoseconds(Int64(p99Ms * 1e6))
      load.startRate = startRate
      load.token = relayToken
      var targets: [(name: String, url: String?, command: String?)] =
        relayUrl.map { ($0, $0, nil) } + relayCmd.map { ($0, nil, $0) }
      if targets.isEmpty { targets = [("swift (embedded)", nil, nil)] }
      var results: [RelayLoadResult] = []
      let settings = load
      for target in targets {
        printError("relay-load: \(target.name)")
        let outcome = blockingResult { () async throws -> RelayLoadResult in
          try await RelayTarget.with(url: target.url, command: target.command, token: settings.token) { url, cpu in
            await settings.run(url: url, name: target.name, cpu: cpu)
          }
        }
        switch outcome {
        case .success(let r): results.append(r)
        case .failure(let error):
          printError("error: \(target.name): \(error)")
          throw ExitCode(1)
        }
      }
      print(RelayLoadReport.table(results))
      for path in try RelayLoadReport.write(results, to: URL(fileURLWithPath: out)) { print(path) }
      // A relay its clients could not reach has no capacity to report: a failure, not "none".
      let unreachable = results.flatMap { r in
        r.stoppedBecause.sorted { $0.key < $1.key }.filter { $0.value.hasPrefix("could not connect") }.map {
          "\(r.relay) at \($0.key) clients: \($0.value)"
        }
      }
      if !unreachable.isEmpty {
        for u in unreachable { printError("error: \(SafeText.escape(u))") }
        throw ExitCode(1)
      }
    }
  }
}

extension KenshoBench {
  /// `kensho-bench judge DIR`: grades a recording of a live relay.
  struct JudgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "judge",
      abstract: "Grade a relay recording (`relay --record DIR`) with the checks the wire alone decides.",
      discussion: """
        Exit codes as for run: 0 when every decidable check passes, 1 when one fails, 2 when the
        recording cannot be read. Checks that need the harness to drive the buses are listed
        as untested. Reports go to --out.
        """)

    @Argument(help: "The folder given to `relay --record`.")
    var directory: String

    @Option(help: "Folder for the reports.")
    var out = "Reports"

    func run() throws {
      let frames: [RelayRecording.Frame]
      do {
        frames = try RelayRecording.load(directory: directory)
      } catch {
        printError("error: \(error)")
        throw Exit.badInput
      }
      let result = RelayRecording.judge(frames, name: "recording \((directory as NSString).lastPathComponent)")
      for c in result.checks where c.verdict != .untested {
        print(
          "\(c.verdict.label.padding(toLength: 10, withPad: " ", startingAt: 0)) \(c.rule) \(c.name): \(c.observed)")
        if let ce = c.counterexample { print("           \(ce.text)") }
      }
      print(
        "\(result.checks.filter { $0.verdict == .untested }.count) checks untested: they need the harness to drive the buses"
      )
      let report = RunReport(
        results: [result],
        metadata: RunReport.Metadata(
          implementation: "recorded relay traffic", seed: 0, startedAt: Date(), finishedAt: Date(),
          arguments: CommandLine.arguments, jemalloc: nil),
        complete: true)
      _ = try ReportWriter.write(report, formats: [.json, .html, .junit], to: URL(fileURLWithPath: out))
      if result.verdict == .fail || result.verdict == .error { throw Exit.failed }
    }
  }
}
