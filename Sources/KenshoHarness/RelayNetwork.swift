import Foundation
import KenshoBus
import KenshoProtocol
public import KenshoRelay
import KenshoScenario
import KenshoVerdict
import Synchronization

/// The relay a scenario with network kind `relay` runs over (PROTOCOL.md §11): an embedded
/// Swift relay on a loopback port the system chooses, the relay at `--relay-url`, or the one
/// `--relay-cmd` starts. It hands each worker a WebSocket transport whose traffic goes into the
/// run's history, probes the relay's own rules after the workload, and stops what it started.
final class RelayNetwork: Sendable {
  let url: RelayURL
  let token: String?
  let floodFrames: Int
  private let embedded: RelayServer?
  private let process: RelayProcess?
  private let transports = Mutex<[WebSocketTransport]>([])
  /// The history index of each message sent, by messageId, for its deliveries and faults.
  private let tags: TagTable

  final class TagTable: Sendable {
    let table = Mutex<[String: Int32]>([:])
  }

  /// How long the relay and each connection may take to come up.
  static let startDeadline: Duration = .seconds(10)

  private init(
    url: RelayURL, token: String?, embedded: RelayServer?, process: RelayProcess?, floodFrames: Int,
    tags: TagTable = TagTable()
  ) {
    self.tags = tags
    self.floodFrames = max(1, floodFrames)
    self.url = url
    self.token = token
    self.embedded = embedded
    self.process = process
  }

  /// Finds or starts the relay for `scenario`, or says why it cannot. The scenario's faults act
  /// at the embedded relay (``RelayFaults``); a relay the harness does not run cannot take them.
  /// `observe`: the workers are an adapter's, whose wire the harness sees only at the embedded
  /// relay (``RelayTap``).
  static func open(
    for scenario: Scenario, options: RunOptions, faults: FaultInjector, recorder: HistoryRecorder,
    clock: any BusClock, observe: SendTap? = nil
  ) throws(AdapterFailure) -> RelayNetwork {
    let token = options.relayToken ?? scenario.network.token
    let external = options.relayURL != nil || options.relayCommand != nil
    if observe != nil && external {
      throw AdapterFailure(
        description:
          "UNSUPPORTED: an adapter's buses hold their own relay connections, and the harness sees their traffic "
          + "only at its embedded relay; --relay-url and --relay-cmd name a relay it does not run")
    }
    if (!scenario.faults.isEmpty || scenario.actions.contains(where: \.isDisconnect)) && external {
      throw AdapterFailure(
        description:
          "UNSUPPORTED: the scenario's faults and disconnections act at the embedded relay; --relay-url and "
          + "--relay-cmd name a relay the harness does not run")
    }
    if let text = options.relayURL {
      do {
        return RelayNetwork(
          url: try RelayURL(text), token: token, embedded: nil, process: nil, floodFrames: options.relayProbeFloodFrames
        )
      } catch {
        throw AdapterFailure(description: "\(error)")
      }
    }
    if let command = options.relayCommand {
      let process = try RelayProcess(command: command, token: token, deadline: startDeadline)
      do {
        return RelayNetwork(
          url: try RelayURL(process.url), token: token, embedded: nil, process: process,
          floodFrames: options.relayProbeFloodFrames)
      } catch {
        process.stop()
        throw AdapterFailure(description: "--relay-cmd printed an unusable address: \(error)")
      }
    }
    let tags = TagTable()
    let faulting = scenario.faults.isEmpty ? nil : RelayFaults(injector: faults, tags: tags)
    let workers = Set(scenario.agents.flatMap(\.workerNames))
    let inner: (any RelayPolicy)? =
      observe.map { RelayTap(sent: $0, workers: workers, faults: faulting, tags: tags) } ?? faulting
    let policy = RelayConnections(wrapping: inner, workers: workers, recorder: recorder, clock: clock)
    let started = blockingResult {
      try await RelayServer.start(configuration: RelayConfiguration(token: scenario.network.token), policy: policy)
    }
    switch started {
    case .success(let server):
      do {
        return RelayNetwork(
          url: try RelayURL(server.url), token: token, embedded: server, process: nil,
          floodFrames: options.relayProbeFloodFrames, tags: tags)
      } catch {
        throw AdapterFailure(description: "the embedded relay's address: \(error)")
      }
    case .failure(let error):
      throw AdapterFailure(description: "the embedded relay did not start: \(error)")
    }
  }

  /// Connects a transport for `worker` whose messages go into `recorder` (sent, and delivered
  /// when addressed to the worker or broadcast), counted in `state`.
  func transport(
    for worker: String, recorder: HistoryRecorder, clock: any BusClock, state: RunStateBox
  ) throws(AdapterFailure) -> WebSocketTransport {
    let tags = self.tags
    var options = WebSocketTransport.Options(token: token)
    options.connectDeadline = Self.startDeadline
    let transport = WebSocketTransport(
      url: url, worker: worker, options: options,
      tap: { event in
        switch event {
        case .sent(let m):
          let tag = recorder.sent(m, origin: .bus, at: clock.nanoseconds())
          tags.table.withLock { $0[m.messageId] = tag }
          state.withLock { $0.wire[m.type, default: 0] += 1 }
        case .received(let m):
          guard m.targetWorker == worker || m.targetWorker == KenshoMessage.broadcastTarget,
            let tag = tags.table.withLock({ $0[m.messageId] })
          else { return }
          recorder.record(.delivered(tag, to: recorder.workerId(worker)), at: clock.nanoseconds())
        case .rejected, .connected, .disconnected: break
        }
      })
    let connected = blockingResult { () async throws -> Void in try await transport.connect() }
    if case .failure(let error) = connected {
      throw AdapterFailure(description: "worker \(worker) could not join the relay: \(error)")
    }
    transports.withLock { $0.append(transport) }
    return transport
  }

  /// Waits until a connection labelled with each of `workers` is open at the embedded relay (an
  /// adapter's buses joining it), or says which are missing at the deadline.
  func awaitLabels(_ workers: [String], deadline: Duration) -> [String] {
    guard let embedded else { return [] }
    let end = ContinuousClock.now + deadline
    while true {
      let open = Set((try? blockingResult { await embedded.labels() }.get()) ?? [])
      let missing = workers.filter { !open.contains($0) }
      if missing.isEmpty || ContinuousClock.now >= end { return missing }
      Thread.sleep(forTimeInterval: 0.02)
    }
  }

  /// Cuts the connection of `worker` at the embedded relay (a `disconnect` action); its bus is
  /// expected to come back on its own. Returns at once: the relay's event loop does the cut.
  func disconnect(_ worker: String) {
    guard let embedded else { return }
    Task(executorPreference: OffPoolExecutor.shared) { await embedded.disconnect(worker) }
  }

  /// Drives the relay through KSP-11's situations with connections of the harness's own.
  func probe() -> RelayJournal {
    var configured = RelayProbe(url: url, token: token)
    configured.floodFrames = floodFrames
    let probe = configured
    switch blockingResult({ await probe.run() }) {
    case .success(let journal): return journal
    case .failure(let error):
      var j = RelayJournal(url: url.description, tokenRequired: token != nil)
      j.problems.append("the probe failed: \(error)")
      return j
    }
  }

  /// Closes every transport and stops the relay if the harness started it.
  func close() {
    for t in transports.withLock({ $0 }) { t.close() }
    if let embedded { _ = blockingResult { await embedded.close() } }
    process?.stop()
  }
}

/// A relay started by `--relay-cmd`: its port and token in the environment
/// (`KENSHO_RELAY_PORT`, `KENSHO_RELAY_TOKEN`), its address from its `listening ws://…` line.
final class RelayProcess: Sendable {
  let url: String
  private let group: ProcessGroup
  private let pid: pid_t

  init(command: String, token: String?, deadline: Duration) throws(AdapterFailure) {
    let words: [String]
    do throws(ShellWords.Problem) {
      words = try ShellWords.split(command)
    } catch {
      throw AdapterFailure(description: "--relay-cmd: \(error)")
    }
    let port = Self.freePort()
    var environment = ["KENSHO_RELAY_PORT=\(port)"]
    if let token { environment.append("KENSHO_RELAY_TOKEN=\(token)") }
    let started = try Spawn.start(["/usr/bin/env"] + environment + words)
    close(started.stdin)
    pid = started.pid
    group = ProcessGroup(pid: started.pid)
    let output = LineReader(fd: started.stdout)
    let errors = LineReader(fd: started.stderr)
    let end = ContinuousClock.now + deadline
    var found: String?
    while found == nil, ContinuousClock.now < end, !group.hasExited {
      guard let line = output.line(until: min(end, ContinuousClock.now + .milliseconds(100))) else { continue }
      if line.hasPrefix("listening ") { found = String(line.dropFirst("listening ".count)) }
    }
    output.detach()
    errors.detach()
    guard let found else {
      let why = group.hasExited ? "it exited" : "it printed no `listening ws://HOST:PORT/` line within \(deadline)"
      let said = errors.tail
      group.kill()
      group.reap(within: .seconds(2))
      throw AdapterFailure(
        description: "--relay-cmd \(command): \(why)" + (said.isEmpty ? "" : "; its stderr: \(said)"))
    }
    url = found.trimmingCharacters(in: .whitespaces)
  }

  /// The process's CPU time so far, seconds: the sum over its threads of the nanoseconds each
  /// ran (`/proc/PID/task/*/schedstat`), else user plus system time in clock ticks
  /// (`/proc/PID/stat`, 10 ms steps); nil once it is gone or where /proc cannot say.
  func cpuSeconds() -> Double? {
    if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
      var nanoseconds = 0.0
      var read = 0
      for task in tasks {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8),
          let first = text.split(separator: " ").first, let ns = Double(first)
        else { continue }
        nanoseconds += ns
        read += 1
      }
      if read > 0 { return nanoseconds / 1e9 }
    }
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = text.lastIndex(of: ")")
    else { return nil }
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return ticks > 0 ? (user + system) / ticks : nil
  }

  /// SIGTERM, a second to finish, then SIGKILL to what is left; always reaped.
  func stop() {
    if !group.hasExited { _ = Glibc.kill(pid, SIGTERM) }
    _ = group.waitForExit(until: ContinuousClock.now + .seconds(2))
    group.kill()
    group.reap(within: .seconds(2))
  }

  /// A port nothing listens on now (bound to port 0 and released).
  static func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return 8080 }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
        bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
      }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : 8080
  }
}

/// Reads lines from a pipe with deadlines; keeps draining it in the background once detached,
/// remembering the last 2 KiB (a relay's stderr for an error message).
final class LineReader: Sendable {
  private let state = Mutex<(buffer: [UInt8], lines: [String], tail: [UInt8], closed: Bool, detached: Bool)>(
    ([], [], [], false, false))
  private let ready = DispatchSemaphore(value: 0)

  init(fd: Int32) {
    let thread = Thread { [self] in
      var chunk = [UInt8](repeating: 0, count: 4096)
      while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        state.withLock { s in
          s.tail.append(contentsOf: chunk[0..<n])
          if s.tail.count > 2048 { s.tail.removeFirst(s.tail.count - 2048) }
          s.buffer.append(contentsOf: chunk[0..<n])
          while let nl = s.buffer.firstIndex(of: 0x0A) {
            if !s.detached { s.lines.append(String(decoding: s.buffer[..<nl].prefix(4096), as: UTF8.self)) }
            s.buffer.removeSubrange(...nl)
            ready.signal()
          }
          if s.buffer.count > 65_536 { s.buffer.removeAll() }  // no newline for 64 KiB: not a line we want
        }
      }
      close(fd)
      state.withLock { $0.closed = true }
      ready.signal()
    }
    thread.start()
  }

  /// The next line, or nil if none came before `end`.
  func line(until end: ContinuousClock.Instant) -> String? {
    while true {
      let next: String? = state.withLock { s in s.lines.isEmpty ? nil : s.lines.removeFirst() }
      if let next { return next }
      let left = end - ContinuousClock.now
      guard left > .zero else { return nil }
      _ = ready.wait(timeout: .now() + .nanoseconds(Int(clamping: left.nanoseconds)))
      if state.withLock({ $0.closed && $0.lines.isEmpty }) { return nil }
    }
  }

  /// Stop keeping lines (the thread still drains the pipe, so the writer never blocks).
  func detach() {
    state.withLock { s in
      s.detached = true
      s.lines.removeAll()
    }
  }

  var tail: String {
    state.withLock { String(decoding: $0.tail, as: UTF8.self) }.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

/// Runs `work` and waits for it on this thread. The work runs on a thread of its own, never
/// on the cooperative pool: the harness blocks its callers' threads (a test's, which is a pool
/// thread), and a pool with every thread waiting would never run it.
public func blockingResult<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
  let result = Mutex<Result<T, any Error>?>(nil)
  let done = DispatchSemaphore(value: 0)
  Task(executorPreference: OffPoolExecutor.shared) {
    let r: Result<T, any Error>
    do { r = .success(try await work()) } catch { r = .failure(error) }
    result.withLock { $0 = r }
    done.signal()
  }
  done.wait()
  return result.withLock { $0 } ?? .failure(CancellationError())
}

/// A relay for a measurement: the one at `url`, the one `command` starts, or an embedded one.
public enum RelayTarget {
  /// `body` gets the relay's address, and for a relay it started, a reading of that process's
  /// CPU seconds.
  public static func with<T: Sendable>(
    url: String?, command: String?, token: String?,
    _ body: @Sendable (RelayURL, (@Sendable () -> Double?)?) async -> T
  ) async throws -> T {
    if let url { return await body(try RelayURL(url), nil) }
    if let command {
      let process = try RelayProcess(command: command, token: token, deadline: RelayNetwork.startDeadline)
      defer { process.stop() }
      return await body(try RelayURL(process.url)) { process.cpuSeconds() }
    }
    let server = try await RelayServer.start(configuration: RelayConfiguration(token: token))
    let result = await body(try RelayURL(server.url), nil)
    await server.close()
    return result
  }
}
