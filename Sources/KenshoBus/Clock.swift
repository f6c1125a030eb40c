import Dispatch
import HeapModule
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The time source of a bus (KSP-6.3): a monotonic reading and one-shot timers.
///
/// Times are nanoseconds since the clock's own origin. ``ManualClock`` replaces time in tests and
/// in virtual-time scenarios; ``SystemClock`` is the production clock.
public protocol BusClock: Sendable {
  /// Nanoseconds since this clock's origin; never decreases.
  func nanoseconds() -> Int64
  /// Runs `action` once, when the clock reaches `deadline` (nanoseconds since the origin).
  func schedule(at deadline: Int64, _ action: @escaping @Sendable () -> Void) -> TimerHandle
}

extension BusClock {
  /// Runs `action` once, `delay` from now.
  public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
    schedule(at: nanoseconds() &+ delay.nanoseconds, action)
  }
}

/// A scheduled timer; cancelling it stops a timer that has not fired yet.
public final class TimerHandle: Sendable {
  private let cancelled = Atomic<Bool>(false)

  public init() {}

  public func cancel() { cancelled.store(true, ordering: .relaxed) }

  public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

extension Duration {
  /// The duration in whole nanoseconds, saturating at the bounds of `Int64`.
  public var nanoseconds: Int64 {
    let (seconds, attoseconds) = components
    let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return seconds < 0 ? .min : .max }
    return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
  }
}

/// The production clock: `CLOCK_MONOTONIC`, timers on Dispatch.
public final class SystemClock: BusClock {
  public static let shared = SystemClock()
  private let queue = DispatchQueue(label: "kensho.clock", attributes: .concurrent)

  public init() {}

  public func nanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
  }

  public func schedule(at deadline: Int64, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
    let handle = TimerHandle()
    let delay = max(0, deadline &- nanoseconds())
    queue.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: delay))) {
      if !handle.isCancelled { action() }
    }
    return handle
  }
}

/// A clock that moves only when told to: tests advance five minutes instantly, and the
/// harness runs virtual-time scenarios as a discrete-event simulation.
///
/// Timers run on the thread that advances the clock, in deadline order (ties in the order
/// they were scheduled), and each sees ``nanoseconds()`` equal to its own deadline.
public final class ManualClock: BusClock {
  private struct Timer: Comparable {
    var deadline: Int64
    var order: UInt64
    var handle: TimerHandle
    var action: @Sendable () -> Void

    static func < (a: Timer, b: Timer) -> Bool { (a.deadline, a.order) < (b.deadline, b.order) }
    static func == (a: Timer, b: Timer) -> Bool { a.deadline == b.deadline && a.order == b.order }
  }

  private struct State {
    var now: Int64
    var nextOrder: UInt64 = 0
    var timers = Heap<Timer>()
  }

  private let state: Mutex<State>

  public init(startingAt start: Int64 = 0) {
    state = Mutex(State(now: start))
  }

  public func nanoseconds() -> Int64 { state.withLock { $0.now } }

  public func schedule(at deadline: Int64, _ action: @escaping @Sendable () -> Void) -> TimerHandle {
    let handle = TimerHandle()
    state.withLock { s in
      s.timers.insert(Timer(deadline: deadline, order: s.nextOrder, handle: handle, action: action))
      s.nextOrder &+= 1
    }
    return handle
  }

  /// Moves time forward by `duration`, running every timer that falls due on the way.
  public func advance(by duration: Duration) {
    let target = state.withLock { $0.now } &+ duration.nanoseconds
    while runNext(notAfter: target) {}
    state.withLock { s in s.now = max(s.now, target) }
  }

  /// Runs the earliest pending timer if it is due no later than `limit`, moving time to its
  /// deadline. Returns whether a timer ran.
  @discardableResult
  public func runNext(notAfter limit: Int64 = .max) -> Bool {
    let due: Timer? = state.withLock { s in
      while let first = s.timers.min {
        if first.handle.isCancelled {
          _ = s.timers.removeMin()
          continue
        }
        guard first.deadline <= limit else { return nil }
        let timer = s.timers.removeMin()
        s.now = max(s.now, timer.deadline)
        return timer
      }
      return nil
    }
    guard let due else { return false }
    due.action()
    return true
  }

  /// The deadline of the earliest pending timer, if any.
  public var nextDeadline: Int64? {
    state.withLock { s in
      while let first = s.timers.min, first.handle.isCancelled { _ = s.timers.removeMin() }
      return s.timers.min?.deadline
    }
  }

  /// Number of timers not yet fired or cancelled.
  public var pendingTimers: Int {
    state.withLock { s in s.timers.unordered.reduce(0) { $0 + ($1.handle.isCancelled ? 0 : 1) } }
  }
}
