import KenshoBus
import KenshoMemory
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-8 Peers that disappear")
struct PeerRuleTests {
  @Test("KSP-8.1: a producer reported gone fails its streams at once with PRODUCER_GONE")
  func ksp8_1_peerDown() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try f.open("hold")
    try #require(emitters.first).chunk(1)
    f.network.reportDown("producer")
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.producerGone, ErrorCode.producerGone])
    #expect(f.consumer.stats.activeStreams == 0)
    #expect(f.clock.nanoseconds() == 0, "at once, not at a sweep")
  }

  @Test("KSP-8.2: a producer that crashes unannounced leaves no entry once the timeout has run")
  func ksp8_2_crashWithoutReport() throws {
    let f = try Fixture()
    let emitters = f.registerHolding()
    try f.open("hold")
    try #require(emitters.first).chunk(1)
    f.network.disconnect("producer")  // vanishes: sends nothing more, nobody is told
    f.advance(.seconds(360))
    #expect(f.recorder.events == [.chunk(1), .error(f.recorder.errors.first ?? SerializedError(message: ""))])
    #expect(f.recorder.errors.map(\.code) == [ErrorCode.streamTimeout])
    #expect(f.consumer.stats.activeStreams == 0)
  }
}

@Suite("KSP-9 Memory")
struct MemoryRuleTests {
  /// Runs `streams` complete streams of every kind of ending on the calling thread.
  static func churn(_ f: Fixture, streams: Int, callbacks: StreamCallbacks? = nil) throws {
    for i in 0..<streams {
      let id = try f.open(i % 4 == 3 ? "hold" : "numbers", callbacks: callbacks)
      switch i % 4 {
      case 0: f.advance(.milliseconds(10))  // ends
      case 1: f.consumer.cancelStream(id)  // cancelled
      case 2: f.advance(.milliseconds(10))  // ends too
      default: f.advance(.seconds(400))  // times out
      }
    }
    f.advance(.seconds(400))
  }

  @Test("KSP-9.1: when every stream is terminal, activeStreams and emitters are empty on every bus")
  func ksp9_1_emptyWhenAllTerminal() throws {
    let f = try Fixture()
    f.registerEmitting(chunks: [1, 2, 3])
    _ = f.registerHolding()
    try Self.churn(f, streams: 200)
    #expect(f.consumer.stats.activeStreams == 0)
    #expect(f.producer.stats.emitters == 0, "cancelled, ended and failed streams release their emitters")
    #expect(f.consumer.activeStreamIds.isEmpty)
    #expect(f.recorder.terminals.count == 200)
  }

  @Test("KSP-9.2: memory retained after N streams returns to its baseline, whatever N")
  func ksp9_2_noResidueGrowsWithN() throws {
    var config = BusConfiguration()
    config.duplicateWindow = 64
    let f = try Fixture(configuration: config, recordWire: false)
    f.registerEmitting(chunks: [1, "two", ["three": 3]])
    f.producer.registerStreamMethod("hold") { _, _ in }
    let terminals = Counter()
    let counting = StreamCallbacks(
      onChunk: { _ in }, onEnd: { _ in terminals.increment() }, onError: { _ in terminals.increment() })
    // Warm-up: tables, the clock's heap and the duplicate window reach their working size.
    try Self.churn(f, streams: 200, callbacks: counting)
    let base = try #require(Jemalloc.threadNet(), "jemalloc thread statistics")
    try Self.churn(f, streams: 400, callbacks: counting)
    let after400 = try #require(Jemalloc.threadNet())
    try Self.churn(f, streams: 1_600, callbacks: counting)
    let after2000 = try #require(Jemalloc.threadNet())
    #expect(terminals.count == 2_200)
    #expect(f.consumer.stats.activeStreams == 0 && f.producer.stats.emitters == 0)
    // Nothing per stream: 1 600 more streams leave nothing more behind. (A constant few KiB of
    // high-water capacity, in tables and the clock's heap, may stay.)
    #expect(after2000 - after400 < 1_024, "retained \(after2000 - after400) B more after 1 600 more streams")
    #expect(after400 - base < 64 * 1024, "retained \(after400 - base) B after 400 streams")
  }

  @Test("KSP-9.3: relaying a large stream holds a few chunks, not the whole payload")
  func ksp9_3_relayDoesNotBuffer() throws {
    let f = try Fixture(recordWire: false)
    let chunkBytes = 64 * 1024
    let chunkCount = 256  // 16 MiB in all
    let peak = PeakMeter()
    f.producer.registerStreamMethod("file") { _, stream in
      for i in 0..<chunkCount {
        _ = f.clock.schedule(after: .milliseconds(i + 1)) {
          try? stream.chunk(.string(String(repeating: "x", count: chunkBytes)))
        }
      }
      _ = f.clock.schedule(after: .milliseconds(chunkCount + 1)) { try? stream.end() }
    }
    let received = Counter()
    let base = try #require(Jemalloc.threadNet())
    try f.open(
      "file",
      callbacks: StreamCallbacks(
        onChunk: { _ in
          received.increment()
          peak.sample(base)
        }))
    f.advance(.seconds(1))
    #expect(received.count == chunkCount)
    #expect(peak.max < Int64(chunkBytes * 8), "held \(peak.max) B while 16 MiB streamed through")
  }
}

/// Highest thread-net allocation seen above a base.
final class PeakMeter: Sendable {
  private let peak = Mutex<Int64>(0)
  var max: Int64 { peak.withLock { $0 } }
  func sample(_ base: Int64) {
    guard let now = Jemalloc.threadNet() else { return }
    peak.withLock { $0 = Swift.max($0, now - base) }
  }
}
