import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
@_spi(Testing) import KenshoBus
import KenshoMemory
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// What the harness knows about one stream.
struct StreamRecord: Sendable {

  var group: Int
  var consumer: String?
  var streamId: String?
  var openedWall: Int64 = 0
  /// Chunks delivered so far (for `cancelAfterChunks`).
  var received = 0
  var terminals = 0
  var intendedOpen: Int64 = 0
  var emits = Deque<Emit>()
  /// How many of `emits`, from the first, carry the wall time of their `send` (adapters in real
  /// time: latency counts from the producer's send, not from the harness's operation).
  var sendsStamped = 0
  var sentDigest: RunningDigest?
  var receivedDigest: RunningDigest?

  init(group: Int) { self.group = group }

  /// The producer sent the next chunk of this stream now.
  mutating func stampSend(at wall: Int64) {
    guard sendsStamped < emits.count else { return }
    emits[sendsStamped].wall = wall
    sendsStamped += 1
  }

  /// The first emit, which a delivered chunk answers.
  mutating func popEmit() -> Emit? {
    if sendsStamped > 0 { sendsStamped -= 1 }
    return emits.popFirst()
  }
}

struct RunState: Sendable {
  var totalStreams: Int
  var records: [StreamRecord] = []
  var streamIndex: [String: Int] = [:]
  var groupOpened: [Int: Int] = [:]
  var crashed: Set<String> = []
  var opened = 0
  var completed = 0
  var done = false
  var emitted = 0
  var delivered = 0
  var bytesDelivered = 0
  var wire: [MessageType: Int] = [:]
  /// Wall-clock ns from emit to onChunk.
  var latency = RunState.histogram()
  /// Scenario-time ns from when each chunk was due to onChunk (corrected for coordinated omission).
  var latencyCorrected = RunState.histogram()
  /// `latency` since the last sample.
  var windowLatency = RunState.histogram()
  /// Scenario-time ns from when a stream was due to open to its first chunk.
  var firstChunk = RunState.histogram()
  /// Scenario-time ns from when a stream was due to open to its terminal callback.
  var completion = RunState.histogram()

  static func histogram() -> Histogram<UInt64> {
    Histogram(highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
  }
  var samples: [Sample] = []
  /// Scenario time of the first sample whose memory reading came after the warm-up: the leak
  /// fit reads no sample before it.
  var warmSamplesFromMs: Double?
  var stopSampling = false
  var memory: MemoryMeter?
  var wallStart: Int64 = 0
  var wallEnd: Int64 = 0
  var scenarioEnd: Int64 = 0

  /// Runs `body` on record `i` in place.
  mutating func update<T>(_ i: Int, _ body: (inout StreamRecord) -> T) -> T { body(&records[i]) }

  init(totalStreams: Int) {
    self.totalStreams = totalStreams
    records.reserveCapacity(totalStreams)
    streamIndex.reserveCapacity(min(totalStreams, 1 << 16))
    samples.reserveCapacity(4096)
    if totalStreams == 0 { done = true }
  }
}

/// A SHA-256 being computed. `SHA256` is a plain value (its state is copied with it) that
/// swift-crypto 3 does not mark `Sendable`.
struct RunningDigest: @unchecked Sendable {
  private var hasher = SHA256()
  mutating func update(data: some DataProtocol) { hasher.update(data: data) }
  func finalize() -> String { Data(hasher.finalize()).base64EncodedString() }
}

/// The run's bookkeeping behind one lock, shareable before the run object exists.
final class RunStateBox: Sendable {
  private let mutex: Mutex<RunState>
  init(_ state: sending RunState) { mutex = Mutex(state) }
  func withLock<R: Sendable>(_ body: (inout RunState) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// The system's monotonic clock, counted from the start of a run, so that a real-time
/// scenario's times (`startMs`, `atMs`, the deadline) mean the same as in virtual time. With a
/// queue, its timers run one at a time on that queue: the harness's clock for a real-time run
/// through adapters, where events, acks and timers take turns on it.
final class RunClock: BusClock {
  private let origin: Atomic<Int64>
  private let stopped = Atomic<Bool>(false)
  let queue: DispatchQueue
  private let base = SystemClock.shared

  init(queue: DispatchQueue? = nil) {
    origin = Atomic(base.nanoseconds())
    self.queue = queue ?? DispatchQueue(label: "kensho.run-clock", attributes: .concurrent)
  }

  /// Moves 0 to now: for the start of a workload whose implementation took a while to start
  /// (adapter processes), before anything is scheduled on this clock or reads it.
  func restart() { origin.store(base.nanoseconds(), ordering: .relaxed) }

  func nanoseconds() -> Int64 { base.nanoseconds() &- origin.load(ordering: .relaxed) }

  /// The run is over: timers due from now on do nothing (an open model stops opening streams),
  /// and, once this returns, nothing already due runs on a serial queue any more.
  func stop() {
    stopped.store(true, ordering: .relaxed)
    queue.sync(flags: .barrier) {}
  }

  func schedule(at deadline: Int64, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
    let handle = TimerHandle()
    let delay = max(0, deadline &- nanoseconds())
    queue.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: delay))) { [self] in
      if !handle.isCancelled && !self.stopped.load(ordering: .relaxed) { action() }
    }
    return handle
  }
}
