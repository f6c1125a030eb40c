import DequeModule
import Dispatch
import Foundation
import KenshoAdapterProtocol
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
/// events the implementation reports until `{"event": "ack", "id": n}`.
///
/// Nothing the process does can crash, hang or exhaust the harness: every wait has a timeout
/// (the per-operation deadline, and the caller's overall deadline when it gives one), every
/// buffer is bounded (``Limits``), and a process that misbehaves — exits, hangs, floods stdout
/// or stderr, closes stdout, writes a line that is not a JSON object or is too long, speaks
/// another protocol version, acknowledges with a bad `nextTimerMs` — becomes an
/// ``AdapterFailure`` naming what it did. Each process runs in its own process group, which is
/// killed (SIGKILL) and reaped on failure and on shutdown, so nothing it started is left
/// behind; ``killAll()`` does the same for every group at once, from a signal handler's
/// dispatch source.
public final class AdapterProcess: Sendable {
  static let protocolVersion = AdapterProtocolFormat.version
  /// The longest line accepted from an implementation.
  static let maxLine = 64 << 20

  /// The bounds on what one process may make the harness hold or wait for.
  struct Limits: Sendable {
    /// The longest line accepted on stdout.
    var maxLine = AdapterProcess.maxLine
    /// Events (lines) and bytes one operation may produce before its ack.
    var maxEventsPerOperation = 100_000
    var maxBytesPerOperation = 128 << 20
    /// Stderr a process may write in its life; more is a flood.
    var maxStderrBytes = 16 << 20
    /// Lines read ahead of the harness: past either bound, stdout is not read (back-pressure).
    var queuedLines = 4096
    var queuedBytes = 8 << 20
    /// How long `shutdown` waits for the ack and, after it, for the process to exit.
    var shutdownAck: Duration = .seconds(2)
    var shutdownExit: Duration = .seconds(1)
    /// How long to wait for a process to exit after its stdout closed, before calling it hung.
    var exitAfterClose: Duration = .seconds(1)
    /// How long to wait for a killed process to be reaped before leaving it to a background
    /// reaper.
    var reap: Duration = .seconds(5)

    init() {}
  }

  struct Hello: Sendable {
    var name: String
    var version: String
    var capabilities: Set<String>
  }

  let command: [String]
  let label: String
  /// The process's id, which is also its process group's id.
  let pid: pid_t
  private let group: ProcessGroup
  private let channel: Channel
  private let stdinFD: Mutex<Int32>
  private let nextId = Atomic<Int>(0)
  /// Lines read from stdout so far, to name a line in problems.
  private let linesRead = Atomic<Int>(0)
  private let deadline: Duration
  private let limits: Limits
  private let log: (@Sendable (String) -> Void)?
  /// The first misbehaviour; every operation after it fails with it at once.
  private let failure = Mutex<AdapterFailure?>(nil)
  private let overall: Mutex<ContinuousClock.Instant?>
  /// Operations never overlap; pipelined, they are written in the order of their ids.
  private let operation = Mutex(())
  /// Pipelining (real time): the operations written and not yet acknowledged, and where events go.
  private let pipeline = Mutex(Pipeline())
  private let pipelined = Atomic<Bool>(false)
  /// The harness is killing the process for a misbehaviour (``fail(_:)``), whose failure follows.
  private let failing = Atomic<Bool>(false)

  /// Starts `command` (split into words by ``ShellWords``; the first is looked up on PATH) in a process group
  /// of its own. `deadline` bounds each operation; `until`, when given, bounds them all (see
  /// ``overallDeadline``).
  init(
    command: String, label: String, deadline: Duration, log: (@Sendable (String) -> Void)? = nil,
    until: ContinuousClock.Instant? = nil, limits: Limits = Limits()
  ) throws(AdapterFailure) {
    do throws(ShellWords.Problem) {
      self.command = try ShellWords.split(command)
    } catch {
      throw AdapterFailure(description: "cannot start \(label): \(error)")
    }
    self.label = label
    self.deadline = deadline
    self.log = log
    self.limits = limits
    self.overall = Mutex(until)
    // A process that dies while we write to it must not take the harness down with SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    let spawned = try Spawn.start(self.command)
    self.pid = spawned.pid
    self.group = ProcessGroup(pid: spawned.pid)
    self.stdinFD = Mutex(spawned.stdin)
    self.channel = Channel()
    Reader.start(
      channel: channel, group: group, stdout: spawned.stdout, stderr: spawned.stderr, limits: limits, label: label,
      log: log)
  }

  deinit {
    group.kill()
    group.reap(within: limits.reap)
    channel.state.withLock { $0.stop = true }
    stdinFD.withLock { fd in
      if fd >= 0 { close(fd) }
      fd = -1
    }
  }

  /// An absolute deadline for every operation from now on (the scenario's wall-clock
  /// deadline): an operation fails when it passes, however long the per-operation deadline.
  var overallDeadline: ContinuousClock.Instant? {
    get { overall.withLock { $0 } }
    set { overall.withLock { $0 = newValue } }
  }

  // MARK: Operations

  /// Sends one operation and returns the events it caused and its ack, each line checked
  /// against the protocol's declaration (``AdapterProtocolFormat``). `until` bounds this
  /// operation in addition to the per-operation deadline and ``overallDeadline``.
  func perform(_ operation: AdapterOperation, until: ContinuousClock.Instant? = nil)
    throws(AdapterFailure) -> (events: [AdapterEvent], ack: AdapterAck)
  {
    let alone = try self.operation.withLock { _ throws(AdapterFailure) -> (events: [AdapterEvent], ack: AdapterAck)? in
      // Checked under the lock that starts pipelining: never two readers of one stdout.
      if pipelined.load(ordering: .acquiring) { return nil }
      return try performAlone(operation, until: until)
    }
    if let alone { return alone }
    return ([], try performPipelined(operation, until: until))
  }

  private enum Bound {
    case operation, overall, caller
  }

  /// Writes an operation's line for an id, where the caller has a faster way than its JSON.
  typealias Line = @Sendable (Int, inout [UInt8]) throws(JSONText.ParseError) -> Void

  private typealias Prepared = (
    op: String, id: Int, bytes: [UInt8], end: ContinuousClock.Instant, bound: Bound, started: ContinuousClock.Instant
  )

  /// An operation's id, line and deadline: the nearest of the adapter timeout, the overall
  /// deadline and the caller's `until`.
  private func prepare(
    _ operation: AdapterOperation, until: ContinuousClock.Instant?, line: Line? = nil
  ) -> Result<Prepared, AdapterFailure> {
    let op = operation.name
    let started = ContinuousClock.now
    var end = started.advanced(by: deadline)
    var bound = Bound.operation
    if let o = overallDeadline, o < end { (end, bound) = (o, .overall) }
    if let until, until < end { (end, bound) = (until, .caller) }
    let id = nextId.wrappingAdd(1, ordering: .relaxed).newValue
    do {
      var bytes: [UInt8]
      if let line {
        bytes = []
        try line(id, &bytes)
      } else {
        bytes = try JSONText.serialize(operation.json(id: id))
      }
      bytes.append(0x0A)
      return .success((op, id, bytes, end, bound, started))
    } catch {
      // The harness's own values: a non-finite number never comes from a scenario.
      return .failure(AdapterFailure(description: "cannot encode \"\(op)\" for \(label): \(error)"))
    }
  }

  private func performAlone(_ operation: AdapterOperation, until: ContinuousClock.Instant?)
    throws(AdapterFailure) -> (events: [AdapterEvent], ack: AdapterAck)
  {
    if let failure = failure.withLock({ $0 }) { throw failure }
    let (op, id, bytes, end, bound, started) = try prepare(operation, until: until).get()
    switch writeInput(bytes, until: end) {
    case .written: break
    case .timedOut:
      throw fail("did not read its input (\"\(op)\", \(bytes.count) bytes) \(describe(bound, started))")
    case .closed(let reason):
      // It closed its stdin: most likely it exited. Say how, when it did.
      if let exit = group.waitForExit(until: .now.advanced(by: limits.exitAfterClose)) {
        throw fail("\(exit) before reading \"\(op)\"")
      }
      throw fail("stopped reading its input (\"\(op)\": \(reason))")
    }
    var events: [AdapterEvent] = []
    var eventBytes = 0
    while true {
      switch channel.next(until: end) {
      case .line(let line):
        eventBytes += line.count
        let number = linesRead.wrappingAdd(1, ordering: .relaxed).newValue
        let decoded: AdapterLine
        switch Self.line(from: line, answering: op, id: id, source: "stdout line \(number)") {
        case .success(let l): decoded = l
        case .failure(let problem): throw fail("\(problem) (in answer to \"\(op)\")")
        }
        if case .ack(let ack) = decoded {
          guard ack.id == id else { throw fail("acknowledged id \(ack.id), expected \(id) (\"\(op)\")") }
          if let error = ack.error {
            let text = error.stringValue ?? Self.excerpt(Array((try? JSONText.serialize(error)) ?? []))
            // The process answered: it failed the operation but did not misbehave. It is not
            // killed; the run stops with the failure and shuts it down.
            throw AdapterFailure(description: "\(label) failed \(op): \(text)")
          }
          return (events, ack)
        }
        if case .event(let event) = decoded { events.append(event) }
        if events.count > limits.maxEventsPerOperation || eventBytes > limits.maxBytesPerOperation {
          throw fail(
            "flooded stdout: \(events.count) events (\(eventBytes >> 20) MiB) without acknowledging \"\(op)\" "
              + "(at most \(limits.maxEventsPerOperation) events or \(limits.maxBytesPerOperation >> 20) MiB an operation)"
          )
        }
        if ContinuousClock.now >= end {
          throw fail(
            "did not acknowledge \"\(op)\" \(describe(bound, started)); it wrote \(events.count) events meanwhile")
        }
      case .problem(let problem):
        throw fail(problem)
      case .closed:
        if let exit = group.waitForExit(until: .now.advanced(by: limits.exitAfterClose)) {
          throw fail("\(exit) in the middle of the run (during \"\(op)\")")
        }
        throw fail("closed its stdout but kept running (during \"\(op)\"); its process group was killed")
      case .timedOut:
        let meanwhile = events.isEmpty ? "" : "; it wrote \(events.count) events meanwhile"
        throw fail("did not answer \"\(op)\" \(describe(bound, started))\(meanwhile)")
      }
    }
  }

  private func describe(_ bound: Bound, _ started: ContinuousClock.Instant) -> String {
    switch bound {
    case .operation: return "within \(deadline) (the adapter timeout)"
    case .overall: return "before the run's overall deadline (\(ContinuousClock.now - started) into the operation)"
    case .caller: return "within \(ContinuousClock.now - started)"
    }
  }

  /// Records a misbehaviour: kills the process group, reaps it and returns the failure, which
  /// sticks.
  private func fail(_ what: String) -> AdapterFailure {
    // The line thread sees the end of stdout this causes: it must wait for this failure, not
    // report the kill as the process's own death.
    failing.store(true, ordering: .releasing)
    group.kill()
    group.reap(within: limits.reap)
    // What it wrote to stderr last says why, most often: let the reader get to its end.
    channel.waitForStderrEnd(until: .now.advanced(by: .milliseconds(250)))
    let failure = AdapterFailure(description: "\(label) \(what)\(stderrSummary)")
    return self.failure.withLock { f in
      if f == nil { f = failure }
      return f ?? failure
    }
  }

  private var stderrSummary: String {
    let tail = channel.state.withLock { $0.tail.contents }
    let text = Self.excerpt(tail, max: 4096, keepNewlines: true)
    let lastLines = text.split(separator: "\n").suffix(3).map { $0.prefix(200) }.joined(separator: " | ")
    return lastLines.isEmpty ? "" : "; stderr: \(lastLines)"
  }

  private enum WriteResult {
    case written, timedOut
    case closed(String)
  }

  /// Writes all of `bytes` to the process's stdin, waiting for room no later than `end`.
  private func writeInput(_ bytes: [UInt8], until end: ContinuousClock.Instant) -> WriteResult {
    stdinFD.withLock { fd -> WriteResult in
      guard fd >= 0 else { return .closed("its input is closed") }
      var offset = 0
      while offset < bytes.count {
        let n = bytes.withUnsafeBytes { buffer -> Int in
          guard let base = buffer.baseAddress else { return 0 }
          return write(fd, base + offset, buffer.count - offset)
        }
        if n > 0 {
          offset += n
          continue
        }
        let error = errno
        if n < 0 && error == EINTR { continue }
        guard n < 0 && error == EAGAIN else { return .closed(String(cString: strerror(error))) }
        let left = end - .now
        if left <= .zero { return .timedOut }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        _ = poll(&pfd, 1, Self.milliseconds(left))
      }
      return .written
    }
  }

  /// A positive poll timeout of at most `d`, in milliseconds.
  static func milliseconds(_ d: Duration) -> Int32 {
    let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000 + 1
    return Int32(clamping: max(1, min(ms, 1000)))
  }

  // MARK: Pipelining (real time)

  /// An operation written to a pipelined process and not yet acknowledged.
  private struct Pending {
    var id: Int
    var op: String
    var due: ContinuousClock.Instant
    var bound: Bound
    var started: ContinuousClock.Instant
    var done: @Sendable (Result<AdapterAck, AdapterFailure>) -> Void
  }

  /// An event of a pipelined process, as the harness handles it.
  enum PipelinedEvent: Sendable {
    case event(AdapterEvent)
    /// A `send` read by the hot path (``HotLine``): its message decoded, and valid as sent.
    case sent(worker: String, message: KenshoMessage)
  }

  private struct Pipeline {
    /// In the order written, which is the order the acks must come in.
    var pending = Deque<Pending>()
    var onEvents: (@Sendable ([PipelinedEvent]) -> Void)?
    var hotLines = true
    var onFailure: (@Sendable (AdapterFailure) -> Void)?
    /// The dispatcher stopped: nothing more is read.
    var ended = false
    /// The process was told to exit (its shutdown acknowledged) or killed by the harness: the
    /// end of its stdout is expected.
    var exitExpected = false
  }

  /// From now on operations are pipelined: ``submit(_:done:)`` writes one and returns at once,
  /// and a thread of the process's own reads every line as it comes. Events go to `onEvents`
  /// (those read together, in one call) and acks to their operation's `done`, both on that
  /// thread, in the order the lines came;
  /// acks must come in the order of the operations. ``perform(_:until:)`` still works (it
  /// waits for its own ack, and returns no events). The first misbehaviour goes to `onFailure`
  /// and fails every operation waiting.
  func startPipelining(
    hotLines: Bool = true, onEvents: @escaping @Sendable ([PipelinedEvent]) -> Void,
    onFailure: @escaping @Sendable (AdapterFailure) -> Void
  ) {
    let first = operation.withLock { _ in
      let was = pipelined.exchange(true, ordering: .acquiringAndReleasing)
      pipeline.withLock { p in
        p.onEvents = onEvents
        p.hotLines = hotLines
        p.onFailure = onFailure
      }
      return !was
    }
    guard first else { return }
    let thread = Thread { [self] in dispatchLines() }
    thread.name = "kensho.adapter-lines"
    thread.start()
  }

  /// Writes `operation` and returns; `done` runs on the process's line thread with its ack, or
  /// at once (on this thread) when it cannot be written. Pipelined processes only.
  /// `line`, when given, writes the operation's line (the same bytes as its JSON, faster).
  func submit(
    _ operation: AdapterOperation, until: ContinuousClock.Instant? = nil, line: Line? = nil,
    done: @escaping @Sendable (Result<AdapterAck, AdapterFailure>) -> Void
  ) {
    let op = operation.name
    let outcome: (failure: AdapterFailure, inLine: Bool)? = self.operation.withLock { _ in
      if let failure = failure.withLock({ $0 }) { return (failure, false) }
      let id: Int
      let bytes: [UInt8]
      let (end, bound, started): (ContinuousClock.Instant, Bound, ContinuousClock.Instant)
      switch prepare(operation, until: until, line: line) {
      case .success(let p): (id, bytes, end, bound, started) = (p.id, p.bytes, p.end, p.bound, p.started)
      case .failure(let failure): return (failure, false)
      }
      // Waiting before it is written: the ack may come before `write` returns.
      let accepted = pipeline.withLock { p in
        guard !p.ended else { return false }
        p.pending.append(Pending(id: id, op: op, due: end, bound: bound, started: started, done: done))
        return true
      }
      guard accepted else {
        return (failure.withLock { $0 } ?? AdapterFailure(description: "\(label) is no longer read"), false)
      }
      switch writeInput(bytes, until: end) {
      case .written: return nil
      case .timedOut:
        return (fail("did not read its input (\"\(op)\", \(bytes.count) bytes) \(describe(bound, started))"), true)
      case .closed(let reason):
        // Closed by the kill of a failure the line thread found meanwhile: that is the reason.
        if failing.load(ordering: .acquiring) { return (awaitFailure(), true) }
        if let exit = group.waitForExit(until: .now.advanced(by: limits.exitAfterClose)) {
          return (fail("\(exit) before reading \"\(op)\""), true)
        }
        return (fail("stopped reading its input (\"\(op)\": \(reason))"), true)
      }
    }
    guard let outcome else { return }
    // Everything waiting fails with it, this operation too: by the pipeline once it is in line.
    endPipeline(outcome.failure)
    if !outcome.inLine { done(.failure(outcome.failure)) }
  }

  private func performPipelined(_ operation: AdapterOperation, until: ContinuousClock.Instant?)
    throws(AdapterFailure) -> AdapterAck
  {
    let result = Mutex<Result<AdapterAck, AdapterFailure>?>(nil)
    let answered = DispatchSemaphore(value: 0)
    submit(operation, until: until) { r in
      let first = result.withLock { slot in
        defer { if slot == nil { slot = r } }
        return slot == nil
      }
      if first { answered.signal() }
    }
    // The line thread enforces the deadline; this one only guards against its loss.
    let backstop = DispatchTime.now() + .nanoseconds(Int(clamping: (deadline + .seconds(5)).nanoseconds))
    if answered.wait(timeout: backstop) == .timedOut {
      throw failure.withLock { $0 }
        ?? AdapterFailure(description: "\(label) did not answer \"\(operation.name)\" (no line thread)")
    }
    switch result.withLock({ $0 }) {
    case .success(let ack)?: return ack
    case .failure(let f)?: throw f
    case nil: throw AdapterFailure(description: "\(label) did not answer \"\(operation.name)\"")
    }
  }

  /// Stops pipelining with `failure`: returns the operations that were waiting, each failed.
  @discardableResult
  private func endPipeline(_ failure: AdapterFailure?) -> [Pending] {
    let (waiting, onFailure, report) = pipeline.withLock { p in
      let waiting = Array(p.pending)
      p.pending.removeAll()
      let report = !p.ended && !p.exitExpected
      p.ended = true
      return (waiting, p.onFailure, report)
    }
    let reason = failure ?? self.failure.withLock { $0 } ?? AdapterFailure(description: "\(label) has ended")
    for w in waiting { w.done(.failure(reason)) }
    if report, let failure { onFailure?(failure) }
    return waiting
  }

  /// The line thread of a pipelined process: every line, checked, to its place.
  private func dispatchLines() {
    let (onEvents, hotLines) = pipeline.withLock { ($0.onEvents, $0.hotLines) }
    // Events read in one turn go together, each run of them before whatever follows it.
    var events: [PipelinedEvent] = []
    func handOver() {
      guard !events.isEmpty else { return }
      onEvents?(events)
      events.removeAll(keepingCapacity: true)
    }
    while true {
      let due = pipeline.withLock { $0.pending.first?.due }
      let wake = min(due ?? .now.advanced(by: .seconds(1)), .now.advanced(by: .milliseconds(250)))
      let next = channel.nextLines(until: wake)
      switch next {
      case .lines(let lines):
        // Every line waiting, in one turn: the hot path's lines without a lock or a clock each.
        for line in lines {
          let number = linesRead.wrappingAdd(1, ordering: .relaxed).newValue
          // The lines of the hot path first; what it does not read plainly, the checker reads.
          if hotLines, let hot = HotLine.decode(line) {
            switch hot {
            case .send(let worker, let message): events.append(.sent(worker: worker, message: message))
            case .callback(let kind, let worker, let streamId, let value):
              events.append(.event(.callback(kind, worker: worker, streamId: streamId, value: value)))
            }
            continue
          }
          // What waits now: an operation may have been written while this thread waited.
          let head = pipeline.withLock { $0.pending.first }
          let answering = head.map { " (in answer to \"\($0.op)\")" } ?? ""
          switch Self.line(from: line, answering: head?.op ?? "", id: head?.id, source: "stdout line \(number)") {
          case .failure(let problem):
            handOver()
            endPipeline(fail("\(problem)\(answering)"))
            return
          case .success(.event(let event)):
            events.append(.event(event))
          case .success(.ack(let ack)):
            handOver()
            guard let head else {
              endPipeline(fail("acknowledged id \(ack.id) with no operation waiting (stdout line \(number))"))
              return
            }
            guard ack.id == head.id else {
              endPipeline(
                fail(
                  "acknowledged id \(ack.id), expected \(head.id) (\"\(head.op)\"): acks come in the order of operations"
                )
              )
              return
            }
            // Failed meanwhile (a write that timed out ends the pipeline): its done has run.
            let mine = pipeline.withLock { p -> Bool in
              guard p.pending.first?.id == head.id else { return false }
              _ = p.pending.popFirst()
              if head.op == "shutdown" { p.exitExpected = true }
              return true
            }
            guard mine else { return }
            if let error = ack.error {
              let text = error.stringValue ?? Self.excerpt(Array((try? JSONText.serialize(error)) ?? []))
              head.done(.failure(AdapterFailure(description: "\(label) failed \(head.op): \(text)")))
            } else {
              head.done(.success(ack))
            }
          }
        }
        handOver()
        // Lines that keep coming do not stretch an operation's deadline: once all that was
        // waiting is read, the operation first in line must not be overdue.
        if let head = pipeline.withLock({ $0.pending.first }), ContinuousClock.now >= head.due {
          endPipeline(fail("did not acknowledge \"\(head.op)\" \(describe(head.bound, head.started))"))
          return
        }
      case .timedOut:
        let head = pipeline.withLock { $0.pending.first }
        if let head, ContinuousClock.now >= head.due {
          endPipeline(fail("did not acknowledge \"\(head.op)\" \(describe(head.bound, head.started))"))
          return
        }
        // Killed or shut down with nothing waiting, yet stdout stays open (a child that escaped
        // the process group holds it): nothing more is read, and this thread ends.
        if head == nil, pipeline.withLock({ $0.exitExpected || $0.ended }) {
          endPipeline(nil)
          return
        }
      case .problem(let problem):
        if failing.load(ordering: .acquiring) {
          endPipeline(awaitFailure())
          return
        }
        endPipeline(pipeline.withLock { $0.exitExpected } ? nil : fail(problem))
        return
      case .closed:
        if pipeline.withLock({ $0.exitExpected }) {
          endPipeline(nil)
          return
        }
        if failing.load(ordering: .acquiring) {
          endPipeline(awaitFailure())
          return
        }
        let head = pipeline.withLock { $0.pending.first }
        if let exit = group.waitForExit(until: .now.advanced(by: limits.exitAfterClose)) {
          endPipeline(fail("\(exit) in the middle of the run" + (head.map { " (during \"\($0.op)\")" } ?? "")))
        } else {
          endPipeline(fail("closed its stdout but kept running; its process group was killed"))
        }
        return
      }
    }
  }

  /// The failure a ``fail(_:)`` in progress on another thread is about to keep.
  private func awaitFailure() -> AdapterFailure {
    let end = ContinuousClock.now.advanced(by: limits.reap + .seconds(1))
    while ContinuousClock.now < end {
      if let f = failure.withLock({ $0 }) { return f }
      usleep(2_000)
    }
    return failure.withLock { $0 } ?? AdapterFailure(description: "\(label) was killed by the harness")
  }

  /// The handshake: protocol version, implementation and capabilities.
  func hello() throws(AdapterFailure) -> Hello {
    let (_, ack) = try perform(.hello)
    let impl = ack.results["implementation"]?.objectValue ?? [:]
    return Hello(
      name: impl["name"]?.stringValue ?? "unnamed", version: impl["version"]?.stringValue ?? "?",
      capabilities: Set((ack.results["capabilities"]?.arrayValue ?? []).compactMap(\.stringValue)))
  }

  /// Ends the process and everything in its process group at once (SIGKILL): a crash. Later
  /// operations fail.
  func kill() {
    pipeline.withLock { $0.exitExpected = true }
    group.kill()
    group.reap(within: limits.reap)
    failure.withLock { f in
      if f == nil { f = AdapterFailure(description: "\(label) was killed by the harness") }
    }
  }

  /// Asks the process to exit; kills its process group when it does not within
  /// ``Limits/shutdownAck`` and ``Limits/shutdownExit``, or once it has (to end whatever it left
  /// running), and reaps it. Returns what the process did wrong, if anything, which is also
  /// written to the log; a process that had already failed returns nothing new.
  @discardableResult
  func shutdown() -> AdapterFailure? {
    let failedBefore = failure.withLock { $0 != nil }
    var problem: AdapterFailure?
    if !failedBefore && !group.isReaped {
      let ackBy = ContinuousClock.now.advanced(by: min(deadline, limits.shutdownAck))
      do {
        _ = try perform(.shutdown, until: ackBy)
        stdinFD.withLock { fd in
          if fd >= 0 { close(fd) }
          fd = -1
        }
        if group.waitForExit(until: .now.advanced(by: limits.shutdownExit)) == nil {
          problem = fail(
            "did not exit within \(limits.shutdownExit) of acknowledging shutdown (its input closed); "
              + "its process group was killed")
        }
      } catch {
        problem = error
      }
    }
    group.kill()
    group.reap(within: limits.reap)
    stdinFD.withLock { fd in
      if fd >= 0 { close(fd) }
      fd = -1
    }
    if let problem { log?("[kensho-bench] \(problem.description)\n") }
    return problem
  }

  var isRunning: Bool { !group.isReaped && !group.hasExited }

  /// SIGKILLs the process group of every adapter process alive, at once: for the CLI's
  /// SIGINT/SIGTERM handler. It takes one lock, held by others only for a set update, and makes
  /// no allocation: safe from a dispatch signal source (not from a raw signal handler).
  public static func killAll() {
    ProcessGroup.killAll()
  }

  /// How many adapter process groups the harness has started and not yet reaped.
  public static var liveGroups: Int { ProcessGroup.live }
}

// MARK: - From bytes to events (pure; fuzzed by AdapterFuzzTests)

extension AdapterProcess {
  /// One line of output as an event: a JSON object with a string `"event"`, or what is wrong
  /// with it.
  static func event(from line: [UInt8]) -> Result<[String: JSONValue], LineProblem> {
    let json: JSONValue
    do {
      json = try JSONText.parse(line)
    } catch {
      return .failure(LineProblem(description: "wrote a line that is not a JSON object (\(error)): \(excerpt(line))"))
    }
    guard case .object(let object) = json else {
      return .failure(
        LineProblem(description: "wrote a line that is not a JSON object (\(json.typeName)): \(excerpt(line))"))
    }
    guard let kind = object["event"] else {
      return .failure(LineProblem(description: "wrote an object without \"event\": \(excerpt(line))"))
    }
    guard kind.stringValue != nil else {
      return .failure(LineProblem(description: "wrote an object whose \"event\" is not a string: \(excerpt(line))"))
    }
    // 1e999 is JSON, but no double: it would come back as infinity, which no message may carry.
    if !json.allFinite, let path = nonFinite(json, at: "$") {
      // A path through deep nesting is shortened in the middle: a problem stays one short line.
      let shown = path.count > 160 ? "\(path.prefix(80))…\(path.suffix(60))" : path
      return .failure(LineProblem(description: "wrote a number out of range at \(shown): \(excerpt(line))"))
    }
    return .success(object)
  }

  /// The path of the first number that is not finite in `value`, if any.
  static func nonFinite(_ value: JSONValue, at path: String) -> String? {
    switch value {
    case .double(let d): return d.isFinite ? nil : path
    case .array(let items):
      for (i, item) in items.enumerated() {
        if let found = nonFinite(item, at: "\(path)[\(i)]") { return found }
      }
      return nil
    case .object(let members):
      for key in members.keys.sorted() {
        if let item = members[key], let found = nonFinite(item, at: "\(path).\(key)") { return found }
      }
      return nil
    default: return nil
    }
  }

  struct LineProblem: Error, CustomStringConvertible {
    var description: String
  }

  /// One line of output checked against the protocol (``AdapterLine/decode(_:answering:source:)``),
  /// an ack against the ack of `op`; or what is wrong with it, naming `source`, the JSON path,
  /// what was expected and what was found. An ack of `hello` naming another protocol version
  /// is refused for that first, whatever else it holds.
  static func line(
    from bytes: [UInt8], answering op: String, id expected: Int? = nil, source: String
  ) -> Result<AdapterLine, LineProblem> {
    let object: [String: JSONValue]
    switch event(from: bytes) {
    case .success(let o): object = o
    case .failure(let problem): return .failure(problem)
    }
    // An ack for another operation than the one waiting: said as such, before its members are
    // held to the waiting operation's (a missing ack otherwise reads as a member out of place).
    if let expected, object["event"] == .string("ack"), let id = object["id"]?.intValue, id != expected {
      return .failure(
        LineProblem(
          description: "acknowledged id \(id), expected \(expected) (\"\(op)\"): acks come in the order of operations"))
    }
    if op == "hello", object["event"] == .string("ack"), let version = object["protocol"]?.stringValue,
      version != protocolVersion
    {
      return .failure(
        LineProblem(
          description:
            "speaks adapter protocol \"\(excerpt(Array(version.utf8)))\"; this harness speaks \"\(protocolVersion)\""))
    }
    switch AdapterLine.decode(.object(object), answering: op, source: source) {
    case .success(let line): return .success(line)
    case .failure(let error):
      return .failure(
        LineProblem(description: "wrote a line that breaks \(protocolVersion): \(error): \(excerpt(bytes))"))
    }
  }

  /// At most `max` bytes of what a process wrote, as printable text: invalid UTF-8 becomes
  /// U+FFFD and control characters `\u{…}`, so that reports stay readable and well-formed.
  static func excerpt(_ bytes: some Collection<UInt8>, max: Int = 120, keepNewlines: Bool = false) -> String {
    var out = ""
    for scalar in String(decoding: bytes.prefix(max), as: UTF8.self).unicodeScalars {
      if scalar.value < 0x20 && !(keepNewlines && scalar == "\n") || (0x7F...0x9F).contains(scalar.value) {
        out += "\\u{\(String(scalar.value, radix: 16))}"
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return bytes.count > max ? out + "…" : out
  }
}

// MARK: - The bytes between the reader thread and the harness

/// Lines read ahead from stdout (bounded), the end of stdout, and the stderr tail.
private final class Channel: Sendable {
  struct State {
    var lines = Deque<[UInt8]>()
    var queuedBytes = 0
    var stdoutClosed = false
    var problem: String?
    var stop = false
    var tail = Tail(capacity: 4096)
    var stderrBytes = 0
    var stderrClosed = false
  }

  enum Next {
    case line([UInt8])
    case problem(String)
    case closed
    case timedOut
  }

  /// What ``nextLines(until:)`` returns: every line waiting, oldest first, or why there is none.
  enum Batch {
    case lines([[UInt8]])
    case problem(String)
    case closed
    case timedOut
  }

  let state = Mutex(State())
  let ready = DispatchSemaphore(value: 0)

  func waitForStderrEnd(until end: ContinuousClock.Instant) {
    while !state.withLock({ $0.stderrClosed }) && ContinuousClock.now < end { usleep(2000) }
  }

  /// The next line, or why there is none, waiting no later than `end`.
  func next(until end: ContinuousClock.Instant) -> Next {
    wait(until: end, timedOut: .timedOut) { s in
      if let problem = s.problem { return .problem(problem) }
      if let line = s.lines.popFirst() {
        s.queuedBytes -= line.count
        return .line(line)
      }
      return s.stdoutClosed ? .closed : nil
    }
  }

  /// Every line waiting (`.lines`, never empty), or why there is none, waiting no later than
  /// `end`.
  func nextLines(until end: ContinuousClock.Instant) -> Batch {
    wait(until: end, timedOut: .timedOut) { s in
      if let problem = s.problem { return .problem(problem) }
      if !s.lines.isEmpty {
        let lines = Array(s.lines)
        s.lines.removeAll(keepingCapacity: true)
        s.queuedBytes = 0
        return .lines(lines)
      }
      return s.stdoutClosed ? .closed : nil
    }
  }

  private func wait<Result>(
    until end: ContinuousClock.Instant, timedOut: Result, _ take: (inout State) -> Result?
  ) -> Result {
    while true {
      let next: Result? = state.withLock { take(&$0) }
      if let next { return next }
      let left = end - .now
      if left <= .zero { return timedOut }
      let slice = min(left, .milliseconds(250))
      _ = ready.wait(timeout: .now() + .milliseconds(Int(AdapterProcess.milliseconds(slice))))
    }
  }
}

/// The last `capacity` bytes written to it, in a ring that never grows.
struct Tail {
  private var ring: [UInt8]
  private var start = 0
  private var count = 0

  init(capacity: Int) {
    ring = [UInt8](repeating: 0, count: max(1, capacity))
  }

  mutating func append(_ bytes: UnsafeRawBufferPointer) {
    let capacity = ring.count
    let kept = bytes.count > capacity ? UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - capacity)...]) : bytes
    for byte in kept {
      ring[(start + count) % capacity] = byte
      if count < capacity {
        count += 1
      } else {
        start = (start + 1) % capacity
      }
    }
  }

  var contents: [UInt8] {
    (0..<count).map { ring[(start + $0) % ring.count] }
  }
}

/// Reads a process's stdout and stderr on a thread of its own.
private enum Reader {
  static func start(
    channel: Channel, group: ProcessGroup, stdout: Int32, stderr: Int32, limits: AdapterProcess.Limits,
    label: String, log: (@Sendable (String) -> Void)?
  ) {
    let thread = Thread {
      run(channel: channel, group: group, stdout: stdout, stderr: stderr, limits: limits, label: label, log: log)
    }
    thread.name = "adapter-io \(group.pid)"
    thread.start()
  }

  static func run(
    channel: Channel, group: ProcessGroup, stdout: Int32, stderr: Int32, limits: AdapterProcess.Limits,
    label: String, log: (@Sendable (String) -> Void)?
  ) {
    var splitter = LineSplitter(maxLine: limits.maxLine)
    var errorLines = StderrLines(label: label)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    defer { buffer.deallocate() }
    var outOpen = true
    var errOpen = true
    func problem(_ text: String) {
      channel.state.withLock { if $0.problem == nil { $0.problem = text } }
      group.kill()
      channel.ready.signal()
    }
    while outOpen || errOpen {
      let (stop, full) = channel.state.withLock { s in
        (s.stop, s.lines.count >= limits.queuedLines || s.queuedBytes >= limits.queuedBytes)
      }
      if stop { break }
      var fds: [pollfd] = []
      if outOpen && !full { fds.append(pollfd(fd: stdout, events: Int16(POLLIN), revents: 0)) }
      if errOpen { fds.append(pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)) }
      if fds.isEmpty {
        usleep(10_000)
        continue
      }
      let ready = poll(&fds, nfds_t(fds.count), full ? 10 : 250)
      if ready < 0 && errno != EINTR { break }
      guard ready > 0 else { continue }
      for pfd in fds where pfd.revents != 0 {
        let n = buffer.baseAddress.map { read(pfd.fd, $0, buffer.count) } ?? 0
        if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
        let isOut = pfd.fd == stdout
        if n <= 0 {
          if isOut {
            outOpen = false
            var last: [UInt8]?
            if channel.state.withLock({ $0.problem == nil }) { last = splitter.finish() }
            channel.state.withLock { s in
              if let last {
                s.lines.append(last)
                s.queuedBytes += last.count
              }
              s.stdoutClosed = true
            }
            channel.ready.signal()
          } else {
            errOpen = false
            if let text = errorLines.finish() { log?(text) }
            channel.state.withLock { $0.stderrClosed = true }
          }
          continue
        }
        if isOut {
          var lines: [[UInt8]] = []
          do {
            try splitter.feed(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { lines.append($0) }
          } catch {
            outOpen = false
            problem("wrote a line longer than \(limits.maxLine >> 20) MiB")
          }
          if !lines.isEmpty {
            channel.state.withLock { s in
              for line in lines {
                s.lines.append(line)
                s.queuedBytes += line.count
              }
            }
            channel.ready.signal()
          }
        } else {
          let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
          let total = channel.state.withLock { s in
            s.tail.append(chunk)
            s.stderrBytes += n
            return s.stderrBytes
          }
          if let log, total <= limits.maxStderrBytes {
            if let text = errorLines.feed(chunk) {
              log(text)
            }
          }
          if total > limits.maxStderrBytes {
            errOpen = false
            if let text = errorLines.finish() { log?(text) }
            channel.state.withLock { $0.stderrClosed = true }
            problem("flooded stderr: more than \(limits.maxStderrBytes >> 20) MiB")
          }
        }
      }
    }
    close(stdout)
    close(stderr)
    channel.state.withLock { s in
      s.stdoutClosed = true
      s.stderrClosed = true
    }
    channel.ready.signal()
  }
}

/// Stderr as whole lines for the log, each prefixed with the process's label; a partial line
/// is held back up to 4 KiB.
struct StderrLines {
  private let prefix: [UInt8]
  private var partial: [UInt8] = []

  init(label: String) {
    prefix = Array("[\(label)] ".utf8)
  }

  mutating func feed(_ bytes: UnsafeRawBufferPointer) -> String? {
    guard let base = bytes.baseAddress else { return nil }
    var out: [UInt8] = []
    var start = 0
    while start < bytes.count, let found = memchr(base + start, 0x0A, bytes.count - start) {
      let newline = UnsafeRawPointer(found) - base
      out += prefix
      if !partial.isEmpty {
        out += partial
        partial = []
      }
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...newline]))
      start = newline + 1
    }
    partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
    if partial.count > 4096 {
      out += prefix + partial + [0x0A]
      partial = []
    }
    return out.isEmpty ? nil : String(decoding: out, as: UTF8.self)
  }

  /// The partial line left, ended.
  mutating func finish() -> String? {
    defer { partial = [] }
    return partial.isEmpty ? nil : String(decoding: prefix + partial + [0x0A], as: UTF8.self)
  }
}

// MARK: - Processes and their groups

/// pipe2(2), which Glibc's Swift module leaves out (it is a GNU extension): a pipe whose ends are
/// close-on-exec from the start, so that no process started meanwhile by another thread inherits
/// them (it would hold the pipe open after the adapter died).
@_silgen_name("pipe2")
private func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// Starts a command with posix_spawn in a process group of its own, with pipes for its stdin,
/// stdout and stderr, and the default disposition and an empty mask for signals (the harness
/// ignores SIGPIPE and, in the CLI, SIGINT; a child must not inherit that).
enum Spawn {
  private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
  /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
  /// module does not export.
  private static let closeFrom: CloseFrom? = dlsym(
    UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np"
  ).map { unsafeBitCast($0, to: CloseFrom.self) }

  /// Closes, in the child, every descriptor from `first` on: with glibc's closefrom action where
  /// there is one, else each descriptor open now (as /proc/self/fd lists them).
  static func closeInChild(from first: Int32, _ actions: inout posix_spawn_file_actions_t) {
    if let closeFrom, closeFrom(&actions, first) == 0 { return }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd >= first && fcntl(fd, F_GETFD) >= 0 {
      posix_spawn_file_actions_addclose(&actions, fd)
    }
  }

  struct Started {
    var pid: pid_t
    var stdin: Int32
    var stdout: Int32
    var stderr: Int32
  }

  static func start(_ argv: [String]) throws(AdapterFailure) -> Started {
    let shown = argv.joined(separator: " ")
    var input: [Int32] = [-1, -1]
    var output: [Int32] = [-1, -1]
    var errors: [Int32] = [-1, -1]
    func closeAll() {
      for fd in input + output + errors where fd >= 0 { close(fd) }
    }
    guard systemPipe2(&input, O_CLOEXEC) == 0, systemPipe2(&output, O_CLOEXEC) == 0,
      systemPipe2(&errors, O_CLOEXEC) == 0
    else {
      let reason = String(cString: strerror(errno))
      closeAll()
      throw AdapterFailure(description: "cannot start \(shown): no pipe (\(reason))")
    }
    // Keep the pipes off 0, 1 and 2, where dup2 onto itself would leave close-on-exec set.
    for i in 0..<2 {
      input[i] = aboveStandard(input[i])
      output[i] = aboveStandard(output[i])
      errors[i] = aboveStandard(errors[i])
    }
    guard (input + output + errors).allSatisfy({ $0 >= 0 }) else {
      closeAll()
      throw AdapterFailure(description: "cannot start \(shown): out of file descriptors")
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, input[0], 0)
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
    // Nothing else of the harness's goes to the child: not every descriptor is close-on-exec
    // (SwiftNIO's accepted sockets are not), and a child holding the embedded relay's end of a
    // connection would keep it open after the relay closed it.
    closeInChild(from: 3, &actions)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setpgroup(&attributes, 0)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setflags(
      &attributes, Int16(truncatingIfNeeded: POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
    defer { for p in cArguments { free(p) } }
    guard cArguments.allSatisfy({ $0 != nil }) else {
      closeAll()
      throw AdapterFailure(description: "cannot start \(shown): out of memory")
    }
    cArguments.append(nil)
    var pid: pid_t = 0
    let result = ProcessGroup.registering(&pid) { pid in
      cArguments.withUnsafeBufferPointer { args -> Int32 in
        guard let file = args.first ?? nil, let argv = args.baseAddress else { return EINVAL }
        return posix_spawnp(&pid, file, &actions, &attributes, argv, environ)
      }
    }
    close(input[0])
    close(output[1])
    close(errors[1])
    guard result == 0 else {
      close(input[1])
      close(output[0])
      close(errors[0])
      throw AdapterFailure(
        description: "cannot start \(shown): \(String(cString: strerror(result)))")
    }
    // The harness never blocks on a write: a process that stops reading is a timeout, not a hang.
    _ = fcntl(input[1], F_SETFL, fcntl(input[1], F_GETFL) | O_NONBLOCK)
    return Started(pid: pid, stdin: input[1], stdout: output[0], stderr: errors[0])
  }

  static func aboveStandard(_ fd: Int32) -> Int32 {
    guard fd >= 0 && fd <= 2 else { return fd }
    let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
    close(fd)
    return moved
  }
}

/// A child process that leads its own process group. The group is killed with SIGKILL before
/// the child is reaped, never after: until it is reaped, its id cannot name another process.
final class ProcessGroup: Sendable {
  private struct State {
    var reaped = false
    var status: Int32 = 0
  }

  let pid: pid_t
  private let state = Mutex(State())

  /// Every group started and not yet reaped.
  private static let groups = Mutex<Set<pid_t>>([])

  init(pid: pid_t) {
    self.pid = pid
  }

  /// Runs `spawn` (which sets the new process's id and returns 0, or returns an errno) with the
  /// registry locked, so that ``killAll()`` cannot miss a process being started.
  static func registering(_ pid: inout pid_t, _ spawn: (inout pid_t) -> Int32) -> Int32 {
    groups.withLock { g in
      let result = spawn(&pid)
      if result == 0 { g.insert(pid) }
      return result
    }
  }

  static func killAll() {
    groups.withLock { g in
      for pid in g { _ = Glibc.kill(-pid, SIGKILL) }
    }
  }

  static var live: Int { groups.withLock { $0.count } }

  var isReaped: Bool { state.withLock { $0.reaped } }

  /// SIGKILL to the whole group, while its leader is not reaped.
  func kill() {
    state.withLock { s in
      if !s.reaped { _ = Glibc.kill(-pid, SIGKILL) }
    }
  }

  /// Whether the leader has exited (without reaping it).
  var hasExited: Bool {
    state.withLock { s in
      if s.reaped { return true }
      var info = siginfo_t()
      guard waitid(P_PID, id_t(bitPattern: pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else {
        return errno == ECHILD
      }
      return info.si_signo != 0
    }
  }

  /// Waits until `end` for the leader to exit; then kills what is left of its group, reaps it
  /// and says how it ended. `nil` when it is still running.
  func waitForExit(until end: ContinuousClock.Instant) -> String? {
    var pause = 1
    while !hasExited {
      if ContinuousClock.now >= end { return nil }
      usleep(useconds_t(pause * 1000))
      pause = min(pause * 2, 20)
    }
    kill()
    reap(within: .seconds(5))
    return exitDescription
  }

  /// How the leader ended, once reaped.
  var exitDescription: String {
    let status = state.withLock { $0.status }
    let signal = status & 0x7F
    if signal == 0 { return "exited (status \((status >> 8) & 0xFF))" }
    let name = [
      SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGILL: "SIGILL",
      SIGTRAP: "SIGTRAP", SIGBUS: "SIGBUS", SIGPIPE: "SIGPIPE", SIGINT: "SIGINT",
    ][signal]
    return "was killed by signal \(signal)\(name.map { " (\($0))" } ?? "")"
  }

  /// Reaps the leader (after ``kill()``), waiting up to `within`; past that, a background thread
  /// waits for it so that it never stays a zombie.
  func reap(within: Duration) {
    let end = ContinuousClock.now.advanced(by: within)
    var pause = 1
    while true {
      let done = state.withLock { s -> Bool in
        if s.reaped { return true }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid || (r < 0 && errno == ECHILD) else { return false }
        s.reaped = true
        s.status = status
        Self.groups.withLock { _ = $0.remove(pid) }
        return true
      }
      if done { return }
      if ContinuousClock.now >= end {
        // Wait for the exit without reaping, then reap under the lock, so that no kill() can
        // come between the reaping and the record of it.
        let thread = Thread { [self] in
          var info = siginfo_t()
          while waitid(P_PID, id_t(bitPattern: pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
          reap(within: .seconds(3600))
        }
        thread.start()
        return
      }
      usleep(useconds_t(pause * 1000))
      pause = min(pause * 2, 10)
    }
  }
}
