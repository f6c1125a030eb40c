import KenshoBus
import KenshoProtocol
import Synchronization
import Testing

@Suite("KSP-FC flow control extension")
struct FlowControlTests {
  func fixture(window: Int?, producerHonours: Bool = true) throws -> Fixture {
    var config = BusConfiguration()
    config.flowControlWindow = window
    config.honoursFlowControl = producerHonours
    return try Fixture(configuration: config)
  }

  @Test("the emitter stops at the window until the consumer grants more, then resumes")
  func creditLimitsTheProducer() throws {
    let f = try fixture(window: 4)
    let emitters = f.registerHolding()
    try f.open("hold")
    let e = try #require(emitters.first)
    #expect(e.isFlowControlled && e.availableCredit == 4)
    #expect(f.wire.of(.streamRequest).first?.metadata?.credit == 4, "the consumer offers its window")
    // Hold the chunks in the network: the consumer receives none, so it grants nothing.
    let held = Mutex<[KenshoMessage]>([])
    f.wire.intercept { m in
      guard m.type == .streamChunk, m.targetWorker == "consumer" else { return .deliver }
      held.withLock { $0.append(m) }
      return .drop
    }
    for i in 0..<4 { try e.chunk(.int(Int64(i))) }
    #expect(throws: EmitterError.noCredit) { try e.chunk(4) }
    #expect(held.withLock { $0.count } == 4, "nothing is sent without credit")
    #expect(held.withLock { $0.first?.metadata?.credit } == 4, "the first chunk acknowledges the offer")
    let resumed = Counter()
    e.onCredit { resumed.increment() }
    #expect(resumed.count == 0)
    f.wire.intercept { _ in .deliver }
    for m in held.withLock({ $0 }) { f.network.route(m, bypassingTap: true) }
    #expect(f.recorder.chunks == [0, 1, 2, 3])
    #expect(
      f.wire.messages.contains { $0.type == .streamChunk && $0.targetWorker == "producer" && $0.metadata?.credit == 2 })
    #expect(resumed.count == 1, "granted credit resumes the producer")
    #expect(e.availableCredit == 4)
    try e.chunk(4)
    #expect(f.recorder.chunks.last == 4)
  }

  @Test("a producer without the extension ignores the offer: no credit, no grants, the stream works")
  func interoperatesWithoutExtension() throws {
    let f = try fixture(window: 4, producerHonours: false)
    let emitters = f.registerHolding()
    try f.open("hold")
    let e = try #require(emitters.first)
    #expect(!e.isFlowControlled)
    for i in 0..<20 { try e.chunk(.int(Int64(i))) }
    try e.end()
    #expect(f.recorder.chunks.count == 20)
    #expect(!f.wire.messages.contains { $0.targetWorker == "producer" && $0.type == .streamChunk }, "no grants sent")
  }

  @Test("a consumer without the extension offers nothing and the producer sends freely")
  func consumerWithoutExtension() throws {
    let f = try fixture(window: nil)
    let emitters = f.registerHolding()
    try f.open("hold")
    #expect(emitters.first?.isFlowControlled == false)
    #expect(f.wire.of(.streamRequest).first?.metadata == nil)
  }
}
