import Dispatch
import Foundation
import KenshoProtocol
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Why an adapter process could not be driven. Each ends the scenario with verdict `error` and
/// this text, never a hang or a crash of the harness.
struct AdapterFailure: Error, CustomStringConvertible {
  var description: String
}

/// One implementation process speaking the adapter protocol (`kensho-adapter/1`,
/// docs/ADAPTER-PROTOCOL.md): one JSON object per line on stdin and stdout, stderr logged.
///
/// Every operation is synchronous: the harness writes `{"op": ..., "id": n}` and collects the
/// events the implementation reports until `{"event": "ack", "id": n}`. A crash, a hang (no
/// ack within the deadline), a line that is not JSON, a line over the size limit or a wrong
/// protocol version becomes an ``AdapterFailure``.
final class AdapterProcess: Sendable {
  static let protocolVersion = "kensho-adapter/1"
  /// The longest line accepted from an implementation.
  static let maxLine = 64 << 20

  struct Hello: Sendable {
    var name: String
    var version: String
    var capabilities: Set<String>
  }

  private struct Lines {
    var queue: [Data] = []
    var closed = false
    var overflow = false
  }

  let command: [String]
  let label: String
  private let process: Process
  private let stdin: FileHandle
  private let lines = Mutex(Lines())
  private let available = DispatchSemaphore(value: 0)
  private let stderrTail = Mutex(Data())
  private let nextId = Atomic<Int>(0)
  private let deadline: Duration
  private let log: (@Sendable (String) -> Void)?

  /// Starts `command` (split on spaces; the first word is looked up on PATH).
  init(command: String, label: String, deadline: Duration, log: (@Sendable (String) -> Void)? = nil)
    throws(AdapterFailure)
  {
    self.command = command.split(separator: " ").map(String.init)
    self.label = label
    self.deadline = deadline
    self.log = log
    guard let executable = self.command.first else { throw AdapterFailure(description: "--impl is empty") }
    // A process that dies while we write to it must not take the harness down with SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + self.command.dropFirst()
    let input = Pipe()
    let output = Pipe()
    let errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    do {
      try process.run()
    } catch {
      throw AdapterFailure(description: "cannot start \(command): \(error.localizedDescription)")
    }
    self.process = process
    self.stdin = input.fileHandleForWriting
    startReading(output.fileHandleForReading)
    errors.fileHandleForReading.readabilityHandler = { [self] handle in
      let data = handle.availableData
      if data.isEmpty {
        handle.readabilityHandler = nil
        return
      }
      log?(String(decoding: data, as: UTF8.self))
      stderrTail.withLock { t in
        t.append(data)
        if t.count > 8192 { t = t.suffix(4096) }
      }
    }
  }

  deinit {
    if process.isRunning { process.terminate() }
  }

  /// Reads stdout on its own thread, splitting it into lines.
  private func startReading(_ handle: FileHandle) {
    // The thread keeps the object alive until the process closes its output.
    let thread = Thread { [self] in
      var buffer = Data()
      while true {
        let chunk = handle.availableData
        if chunk.isEmpty {
          lines.withLock { $0.closed = true }
          available.signal()
          return
        }
        // Only the new bytes can hold a newline the buffer did not have.
        var searchFrom = buffer.endIndex
        buffer.append(chunk)
        var lineStart = buffer.startIndex
        while let newline = buffer[searchFrom...].firstIndex(of: 0x0A) {
          let line = buffer[lineStart..<newline]
          if !line.isEmpty {
            lines.withLock { $0.queue.append(Data(line)) }
            available.signal()
          }
          lineStart = buffer.index(after: newline)
          searchFrom = lineStart
        }
        if lineStart != buffer.startIndex { buffer = Data(buffer[lineStart...]) }
        if buffer.count > AdapterProcess.maxLine {
          lines.withLock { $0.overflow = true }
          available.signal()
          return
        }
      }
    }
    thread.start()
  }

  /// The next line, or a failure when the process ended, hung or misbehaved.
  private func nextLine(until end: DispatchTime) throws(AdapterFailure) -> Data {
    while true {
      let state: (Data?, Bool, Bool) = lines.withLock { l in
        if !l.queue.isEmpty { return (l.queue.removeFirst(), false, false) }
        return (nil, l.closed, l.overflow)
      }
      if let line = state.0 { return line }
      if state.2 {
        kill()
        throw AdapterFailure(description: "\(label) wrote a line longer than \(Self.maxLine >> 20) MiB")
      }
      if state.1 {
        process.waitUntilExit()
        throw AdapterFailure(
          description: "\(label) exited (status \(process.terminationStatus)) in the middle of the run\(stderrSummary)")
      }
      if available.wait(timeout: end) == .timedOut {
        kill()
        throw AdapterFailure(description: "\(label) did not answer within \(deadline)\(stderrSummary)")
      }
    }
  }

  private var stderrSummary: String {
    let tail = stderrTail.withLock { String(decoding: $0, as: UTF8.self) }
    let lastLines = tail.split(separator: "\n").suffix(3).joined(separator: " | ")
    return lastLines.isEmpty ? "" : "; stderr: \(lastLines)"
  }

  /// Sends one operation and returns the events it caused and its ack.
  func perform(_ op: String, _ fields: [String: JSONValue] = [:]) throws(AdapterFailure) -> (
    events: [[String: JSONValue]], ack: [String: JSONValue]
  ) {
    let id = nextId.wrappingAdd(1, ordering: .relaxed).newValue
    var object = fields
    object["op"] = .string(op)
    object["id"] = .int(Int64(id))
    do {
      var data = try KenshoCodec.encode(.object(object))
      data.append(0x0A)
      try stdin.write(contentsOf: data)
    } catch {
      throw AdapterFailure(
        description: "\(label) stopped reading its input (\(op)): \(error.localizedDescription)\(stderrSummary)")
    }
    let end = DispatchTime.now() + .nanoseconds(Int(deadline.nanoseconds))
    var events: [[String: JSONValue]] = []
    while true {
      let line = try nextLine(until: end)
      guard case .success(let json) = KenshoCodec.parse(line), case .object(let event) = json else {
        kill()
        let text = String(decoding: line.prefix(120), as: UTF8.self)
        throw AdapterFailure(description: "\(label) wrote a line that is not a JSON object: \(text)")
      }
      guard let kind = event["event"]?.stringValue else {
        kill()
        throw AdapterFailure(description: "\(label) wrote an object without \"event\" in answer to \(op)")
      }
      if kind == "ack" {
        guard event["id"]?.intValue == Int64(id) else {
          kill()
          throw AdapterFailure(
            description: "\(label) acknowledged id \(event["id"].map { "\($0)" } ?? "nothing"), expected \(id)")
        }
        if let error = event["error"]?.stringValue {
          throw AdapterFailure(description: "\(label) failed \(op): \(error)")
        }
        return (events, event)
      }
      events.append(event)
    }
  }

  /// The handshake: protocol version, implementation and capabilities.
  func hello() throws(AdapterFailure) -> Hello {
    let (_, ack) = try perform("hello", ["protocol": .string(Self.protocolVersion)])
    guard let version = ack["protocol"]?.stringValue else {
      kill()
      throw AdapterFailure(description: "\(label) answered hello without \"protocol\"")
    }
    guard version == Self.protocolVersion else {
      kill()
      throw AdapterFailure(
        description: "\(label) speaks adapter protocol \"\(version)\"; this harness speaks \"\(Self.protocolVersion)\"")
    }
    let impl = ack["implementation"]?.objectValue ?? [:]
    return Hello(
      name: impl["name"]?.stringValue ?? "unnamed", version: impl["version"]?.stringValue ?? "?",
      capabilities: Set((ack["capabilities"]?.arrayValue ?? []).compactMap(\.stringValue)))
  }

  /// Ends the process at once (SIGKILL): a crash.
  func kill() {
    if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
  }

  /// Asks the process to exit, then kills it if it does not.
  func shutdown() {
    _ = try? perform("shutdown")
    try? stdin.close()
    let end = Date().addingTimeInterval(2)
    while process.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
    kill()
  }

  var isRunning: Bool { process.isRunning }
}
