import KenshoBus
import KenshoProtocol
import Testing

@Suite("KSP-6 Idle timeout")
struct TimeoutRuleTests {
  @Test("KSP-6.1: defaults are a 300 000 ms timeout and a 60 000 ms sweep")
  func ksp6_1_defaults() throws {
    let config = BusConfiguration()
    #expect(config.streamTimeout == .milliseconds(300_000))
    #expect(config.sweepInterval == .milliseconds(60_000))
    let f = try Fixture()
    _ = f.registerHolding()
    try f.open("hold")
    f.advance(.milliseconds(300_000))
    #expect(f.recorder.events.isEmpty, "not before 300 000 ms")
    f.advance(.milliseconds(60_000))
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout])
    let at = try #require(f.recorder.times.first)
    #expect(at > 300_000_000_000 && at <= 360_000_000_000)
  }

  @Test("KSP-6.1: callbacks.timeout overrides the bus's timeout for that stream")
  func ksp6_1_perStreamOverride() throws {
    let f = try Fixture()
    _ = f.registerHolding()
    let short = Recorder(clock: f.clock)
    try f.open("hold", callbacks: short.callbacks(timeout: .seconds(90)))
    try f.open("hold")
    f.advance(.seconds(150))
    #expect(short.errors.map(\.code) == [ErrorCode.streamTimeout])
    #expect(f.recorder.events.isEmpty)
    #expect(f.consumer.stats.activeStreams == 1)
    let at = try #require(short.times.first)
    #expect(at > 90_000_000_000 && at <= 150_000_000_000)
  }

  @Test("KSP-6.2: a timeout fires never before the timeout and at most one sweep interval after")
  func ksp6_2_timeoutWindow() throws {
    for (timeout, sweep) in [(5_000, 1_000), (1_000, 3_000), (300_000, 60_000), (7_500, 7_500)] {
      var config = BusConfiguration()
      config.streamTimeout = .milliseconds(timeout)
      config.sweepInterval = .milliseconds(sweep)
      let f = try Fixture(configuration: config)
      let emitters = f.registerHolding()
      f.advance(.milliseconds(123))  // open at an odd time
      try f.open("hold")
      f.advance(.milliseconds(400))
      try #require(emitters.first).chunk(1)  // last activity at 523 ms
      let lastActivity: Int64 = 523_000_000
      f.advance(.milliseconds(timeout + sweep + 1_000))
      #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout])
      let at = try #require(f.recorder.times.last)
      #expect(at - lastActivity > Int64(timeout) * 1_000_000, "fired early for timeout \(timeout)")
      #expect(at - lastActivity <= Int64(timeout + sweep) * 1_000_000, "fired late for timeout \(timeout)")
      #expect(f.consumer.stats.activeStreams == 0)
    }
  }

  @Test("KSP-6.3: both durations are configurable and time comes from a replaceable clock")
  func ksp6_3_configurableAndReplaceableClock() throws {
    var config = BusConfiguration()
    config.streamTimeout = .milliseconds(2_000)
    config.sweepInterval = .milliseconds(500)
    let f = try Fixture(configuration: config)
    _ = f.registerHolding()
    try f.open("hold")
    f.advance(.milliseconds(2_000))
    #expect(f.recorder.events.isEmpty)
    f.advance(.milliseconds(500))
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout])
    #expect(f.clock.nanoseconds() == 2_500_000_000, "manual time, no waiting")
    #expect(!f.consumer.isSweepScheduled, "no sweep runs while nothing is open")
  }
}
