import Foundation
import KenshoRelay
import Testing

@testable import KenshoHarness

@Suite("Relay load (capacity ramp)", .serialized)
struct RelayLoadTests {
  func step(offered: Double, sent: Double, lost: Int = 0, p99Us: Double = 1_000) -> RelayLoadStep {
    RelayLoadStep(
      clients: 2, offeredPerSecond: offered, sentPerSecond: sent, forwardedPerSecond: sent, lost: lost, p50Us: 500,
      p99Us: p99Us, p999Us: p99Us, maxUs: p99Us)
  }

  @Test("a step is past capacity when a frame is lost, p99 passes the bound, or the generator falls short")
  func failureOfAStep() {
    let load = RelayLoad()
    #expect(load.failure(of: step(offered: 1_000, sent: 1_000)) == nil)
    #expect(load.failure(of: step(offered: 1_000, sent: 1_000, lost: 3))?.contains("3 frames lost") == true)
    #expect(load.failure(of: step(offered: 1_000, sent: 1_000, p99Us: 60_000))?.contains("p99 60 ms above 50") == true)
    #expect(load.failure(of: step(offered: 1_000, sent: 800))?.contains("could send only 800/s of 1000/s") == true)
  }

  @Test("against the embedded relay: every step up to the highest rate, each frame to the other client, none lost")
  func rampAgainstEmbeddedRelay() async throws {
    var load = RelayLoad()
    load.clientCounts = [2]
    load.startRate = 200
    load.maxRate = 400
    load.stepSeconds = 0.3
    // Mechanics, not speed: beside the other tests (a busy cooperative pool) the generator may
    // fall behind its rate and a p99 may be anything.
    load.p99Bound = .seconds(600)
    load.minimumSentShare = 0
    let server = try await RelayServer.start()
    let result = await load.run(url: try RelayURL(server.url), name: "embedded")
    await server.close()
    #expect(result.steps.map(\.offeredPerSecond) == [200, 400])
    #expect(result.steps.allSatisfy { $0.lost == 0 && $0.forwardedPerSecond > 0 }, "\(result.steps)")
    #expect(result.stoppedBecause[2] == "reached the highest rate tried")
    #expect((result.capacity[2] ?? 0) > 0, "\(result.capacity)")
    #expect(result.steps.allSatisfy { $0.relayCpuUsPerFrame == nil }, "the embedded relay's CPU is the harness's own")
  }

  @Test("a relay the harness starts has its CPU per forwarded frame measured at each step, and at capacity")
  func relayCpuOfAStartedRelay() async throws {
    var load = RelayLoad()
    load.clientCounts = [2]
    load.startRate = 2_000
    load.maxRate = 4_000
    load.stepSeconds = 0.5
    load.p99Bound = .seconds(600)
    load.minimumSentShare = 0
    let settings = load
    let result = try await RelayTarget.with(url: nil, command: builtProduct("kensho-bench") + " relay", token: nil) {
      url, cpu in
      #expect(cpu?() != nil, "the started relay's /proc/PID/stat is readable")
      return await settings.run(url: url, name: "started", cpu: cpu)
    }
    let costs = result.steps.compactMap(\.relayCpuUsPerFrame)
    #expect(costs.count == result.steps.count && costs.allSatisfy { $0 > 0 && $0 < 10_000 }, "\(costs)")
    #expect(result.cpuUsPerFrame[2] != nil, "\(result.cpuUsPerFrame)")
  }

  @Test("past the bound, the interval between the last rate within it and the first past it is halved three times")
  func refinesBetweenPassAndFail() async {
    var load = RelayLoad()
    load.startRate = 1_000
    // A relay that keeps up to 3 000 frames/s offered and loses frames beyond.
    let (steps, capacity, why) = await load.ramp(clients: 2) { rate in
      step(offered: rate, sent: rate, lost: rate > 3_000 ? 10 : 0)
    }
    #expect(steps.map(\.offeredPerSecond) == [1_000, 2_000, 4_000, 3_000, 3_500, 3_250])
    #expect(capacity == 3_000)
    #expect(why == "10 frames lost at 4000 frames/s offered; capacity between 3000 and 3250 frames/s offered")
  }

  @Test("a ramp whose first step fails refines nothing, and clients that cannot connect say so")
  func firstStepFails() async {
    let load = RelayLoad()
    let (steps, capacity, why) = await load.ramp(clients: 2) { rate in step(offered: rate, sent: rate, lost: 1) }
    #expect(steps.count == 1 && capacity == 0)
    #expect(why == "1 frames lost at 1000 frames/s offered")
    let none = await load.ramp(clients: 7) { _ in nil }
    #expect(none.steps.isEmpty && none.stoppedBecause == "could not connect 7 clients")
  }
}
