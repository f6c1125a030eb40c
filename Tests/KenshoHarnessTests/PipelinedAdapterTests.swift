import Foundation
import KenshoAdapterProtocol
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization
import Testing

@testable import KenshoHarness

let pipelineFixture = packageRoot.appendingPathComponent("Tests/Fixtures/pipeline-adapter.py").path

/// What a pipelined process gave, in the order it came: each operation's outcome, events, failures.
final class PipelineLog: Sendable {
  private struct State {
    var done: [String] = []
    var events: [(String, ContinuousClock.Instant)] = []
    var failures: [String] = []
  }

  private let state = Mutex(State())

  func done(_ result: Result<AdapterAck, AdapterFailure>) {
    state.withLock { s in
      switch result {
      case .success(let ack): s.done.append("ok \(ack.id)")
      case .failure(let failure): s.done.append("failed: \(failure.description)")
      }
    }
  }

  func event(_ event: AdapterProcess.PipelinedEvent) {
    if case .event(.log(_, let message)) = event { state.withLock { $0.events.append((message, .now)) } }
  }

  func failure(_ text: String) { state.withLock { $0.failures.append(text) } }

  var outcomes: [String] { state.withLock { $0.done } }
  var events: [(String, ContinuousClock.Instant)] { state.withLock { $0.events } }
  var failures: [String] { state.withLock { $0.failures } }

  /// Waits until `condition` holds, at most `seconds`; returns whether it did.
  func wait(_ seconds: Double = 5, until condition: (PipelineLog) -> Bool) -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < end {
      if condition(self) { return true }
      usleep(5_000)
    }
    return condition(self)
  }
}

/// AdapterProcess in real time: operations pipelined, acks matched in order, events between
/// operations, and every way an adapter can break that (kensho-adapter/1, Real time).
@Suite("Pipelined adapter processes (real time)", .serialized, .enabled(if: hasPython, "needs python3"))
struct PipelinedAdapterTests {
  func start(_ mode: String, deadline: Duration = .seconds(5)) throws -> (AdapterProcess, PipelineLog) {
    let process = try AdapterProcess(
      command: "python3 \(pipelineFixture) \(mode)", label: "fixture", deadline: deadline)
    _ = try process.hello()
    let log = PipelineLog()
    process.startPipelining(
      onEvents: { for event in $0 { log.event(event) } }, onFailure: { log.failure($0.description) })
    return (process, log)
  }

  /// An operation whose ack carries nothing (peer_down), numbered for the reader.
  static func operation(_ n: Int) -> AdapterOperation { .peerDown(worker: "w", peer: "p\(n)") }

  @Test("operations are written without waiting for acks: an adapter that answers three at a time gets all nine")
  func pipelines() throws {
    let (process, log) = try start("batch")
    defer { process.shutdown() }
    for n in 0..<9 { process.submit(Self.operation(n)) { log.done($0) } }
    #expect(log.wait { $0.outcomes.count == 9 }, "outcomes: \(log.outcomes)")
    // hello was id 1: the nine are 2 to 10, acknowledged in the order written.
    #expect(log.outcomes == (2...10).map { "ok \($0)" })
    #expect(log.failures.isEmpty)
  }

  @Test("perform still waits for its own ack when pipelined, and returns it")
  func performWhilePipelined() throws {
    let (process, log) = try start("unprompted")
    defer { process.shutdown() }
    let (events, ack) = try process.perform(Self.operation(0))
    #expect(ack.id == 2 && ack.error == nil)
    #expect(events.isEmpty)  // events go to onEvents, as they come
    #expect(log.failures.isEmpty)
  }

  @Test("events written between operations reach the harness as they come, not with a later ack")
  func eventsBetweenOperations() throws {
    let (process, log) = try start("unprompted")
    defer { process.shutdown() }
    process.submit(Self.operation(0)) { log.done($0) }
    let submitted = ContinuousClock.now
    // The fixture writes "after peer_down 2" 100 ms after its ack, with nothing waiting.
    #expect(log.wait { $0.events.contains { $0.0 == "after peer_down 2" } }, "events: \(log.events.map(\.0))")
    #expect(log.outcomes == ["ok 2"])
    if let arrival = log.events.first?.1 { #expect(arrival - submitted < .seconds(2)) }
    #expect(log.failures.isEmpty)
  }

  @Test("an ack out of order fails the run, naming both ids and the operation, and every waiting operation")
  func ackOutOfOrder() throws {
    let (process, log) = try start("reorder")
    defer { process.shutdown() }
    process.submit(Self.operation(0)) { log.done($0) }
    process.submit(Self.operation(1)) { log.done($0) }
    #expect(log.wait { $0.outcomes.count == 2 && $0.failures.count == 1 }, "\(log.outcomes) \(log.failures)")
    let failure = log.failures.first ?? ""
    #expect(failure.contains("acknowledged id 3, expected 2 (\"peer_down\")"), "\(failure)")
    #expect(failure.contains("in the order of operations"), "\(failure)")
    #expect(log.outcomes.allSatisfy { $0.hasPrefix("failed: ") && $0.contains("acknowledged id 3") })
    // Everything after fails at once with the same failure.
    process.submit(Self.operation(2)) { log.done($0) }
    #expect(log.outcomes.count == 3 && log.outcomes[2].contains("acknowledged id 3"))
  }

  @Test("an ack with no operation waiting is an error naming the line")
  func strayAck() throws {
    let (process, log) = try start("stray")
    defer { process.shutdown() }
    #expect(log.wait { !$0.failures.isEmpty })
    let failure = log.failures.first ?? ""
    #expect(failure.contains("acknowledged id 99 with no operation waiting (stdout line 2)"), "\(failure)")
  }

  @Test("a pipelined operation never acknowledged fails within the adapter timeout, with all that wait behind it")
  func unansweredOperation() throws {
    let (process, log) = try start("silent", deadline: .seconds(1))
    defer { process.shutdown() }
    let started = ContinuousClock.now
    for n in 0..<3 { process.submit(Self.operation(n)) { log.done($0) } }
    #expect(log.wait(4) { $0.outcomes.count == 3 }, "\(log.outcomes)")
    #expect(ContinuousClock.now - started < .seconds(3))
    let failure = log.failures.first ?? ""
    #expect(
      failure.contains("did not acknowledge \"peer_down\" within 1.0 seconds (the adapter timeout)"), "\(failure)")
    #expect(log.outcomes.allSatisfy { $0.contains("did not acknowledge") })
    #expect(!process.isRunning)
  }

  @Test("an adapter that keeps writing events cannot stretch an unacknowledged operation past its deadline")
  func eventsDoNotStretchTheDeadline() throws {
    let (process, log) = try start("heartbeat", deadline: .seconds(1))
    defer { process.shutdown() }
    let started = ContinuousClock.now
    process.submit(Self.operation(0)) { log.done($0) }
    #expect(log.wait(4) { $0.outcomes.count == 1 }, "\(log.outcomes)")
    #expect(ContinuousClock.now - started < .seconds(3))
    #expect(log.outcomes.first?.contains("did not acknowledge \"peer_down\" within 1.0 seconds") == true)
    #expect(!log.events.isEmpty)  // it did write meanwhile
  }

  @Test("a process the harness kills (a crash it injects) is not reported as a failure")
  func killedByTheHarness() throws {
    let (process, log) = try start("unprompted")
    process.kill()
    process.submit(Self.operation(0)) { log.done($0) }
    #expect(log.outcomes.first?.contains("killed by the harness") == true, "\(log.outcomes)")
    usleep(300_000)  // the line thread sees the end of stdout meanwhile
    #expect(log.failures.isEmpty, "\(log.failures)")
  }

  @Test("an adapter that stops reading its input fails for that, not for the kill that follows")
  func writeTimeoutIsTheReason() throws {
    let (process, log) = try start("deaf", deadline: .seconds(1))
    defer { process.shutdown() }
    // Far more than a pipe holds: the write cannot finish.
    let big = AdapterOperation.deliver(worker: "w", messages: [.string(String(repeating: "x", count: 1 << 20))])
    process.submit(big) { log.done($0) }
    #expect(log.wait(6) { $0.outcomes.count == 1 && $0.failures.count == 1 }, "\(log.outcomes) \(log.failures)")
    let failure = log.failures.first ?? ""
    // Its write and its ack are both due at the deadline: either is the truth, the kill is not.
    let why = ["did not read its input (\"deliver\"", "did not acknowledge \"deliver\" within 1.0 seconds"]
    #expect(why.contains { failure.contains($0) }, "\(failure)")
    #expect(!failure.contains("SIGKILL"), "\(failure)")
    #expect(log.outcomes.first == "failed: \(failure)", "\(log.outcomes)")
  }

  @Test("a process shut down while an escaped child holds its stdout open is let go: its line thread ends")
  func escapedChildDoesNotPinTheProcess() throws {
    weak var watched: AdapterProcess?
    do {
      let (process, log) = try start("escape")
      watched = process
      process.submit(Self.operation(0)) { log.done($0) }
      #expect(log.wait { $0.outcomes == ["ok 2"] }, "\(log.outcomes)")
      #expect(process.shutdown() == nil)
    }
    let released = PipelineLog().wait(3) { _ in watched == nil }
    #expect(released, "the line thread still holds the process 3 s after its shutdown")
  }
}
