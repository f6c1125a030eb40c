import Foundation
@_spi(Testing) import KenshoHarness
import KenshoRelay
import KenshoScenario
import KenshoVerdict
import NIOCore
import Testing

/// `relay --record` then `judge`: a live session's traffic graded by the wire checks.
@Suite("Relay recordings (record, then judge)", .serialized)
struct RelayRecordingTests {
  static func folder() -> String {
    let path = NSTemporaryDirectory() + "kensho-record-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  @Test("a recorded session of relay-streams is graded: KSP-1.1 and 1.4 pass, the rest untested")
  func recordedSessionPasses() async throws {
    let dir = Self.folder()
    let recorder = try RelayRecording.Recorder(directory: dir)
    let relay = try await RelayServer.start(configuration: RelayConfiguration(token: "t"), policy: recorder)
    var scenario = try ScenarioLoader.load(
      file: packageRoot.appendingPathComponent("Scenarios/relay-streams.json").path)
    scenario.workload[0].streams = 4
    scenario.network.probe = false  // a live deployment has no probe: only bus traffic
    scenario.expect.removeAll { if case .metric = $0.kind { true } else { false } }
    var options = RunOptions()
    options.relayURL = relay.url
    options.relayToken = "t"
    let run = ScenarioRunner(wallDeadline: .seconds(60), options: options).run(scenario)
    #expect(run.verdict.isSuccess, "\(run.checks.filter { !$0.verdict.isSuccess })")
    await relay.close()
    recorder.close()
    #expect(recorder.counts.frames > 100)
    #expect(recorder.counts.invalid == 0)
    let frames = try RelayRecording.load(directory: dir)
    let result = RelayRecording.judge(frames, name: "recorded")
    let graded = result.checks.filter { $0.verdict != .untested }
    #expect(graded.map(\.rule) == ["KSP-1.1", "KSP-1.4"])
    #expect(graded.allSatisfy { $0.verdict == .pass }, "\(graded)")
    #expect(result.verdict == .pass)
    #expect(result.checks.count > 10 && result.checks.dropFirst(2).allSatisfy { $0.verdict == .untested })
  }

  @Test("KSP-1.1 on a recording: a frame that is no KenshoMessage fails wire_valid, naming its sender")
  func junkFrameFails() async throws {
    let dir = Self.folder()
    let recorder = try RelayRecording.Recorder(directory: dir)
    let relay = try await RelayServer.start(policy: recorder)
    let client = try await RelayClient.connect(to: try RelayURL(relay.url), label: "rogue", handler: { _ in })
    client.send(text: #"{"messageId":"m1","sourceWorker":"a","targetWorker":"b","type":"request","payload":1}"#)
    client.send(text: "not a message")
    try await Task.sleep(for: .milliseconds(300))
    await relay.close()
    recorder.close()
    #expect(recorder.counts == (2, 1))
    let result = RelayRecording.judge(try RelayRecording.load(directory: dir), name: "junk")
    let wire = result.checks.first { $0.rule == "KSP-1.1" }
    #expect(wire?.verdict == .fail)
    #expect(wire?.counterexample?.text.contains("rogue") == true, "\(String(describing: wire))")
    #expect(result.verdict == .fail)
  }

  @Test("an unreadable recording is refused naming the file and line")
  func badRecording() throws {
    let dir = Self.folder()
    #expect(throws: RelayRecording.Problem.self) { try RelayRecording.load(directory: dir) }
    let path = (dir as NSString).appendingPathComponent(RelayRecording.fileName)
    try Data("{\"format\":\"other\"}\n".utf8).write(to: URL(fileURLWithPath: path))
    #expect { try RelayRecording.load(directory: dir) } throws: { "\($0)".contains(":1: $.format") }
    try Data("{\"format\":\"kensho-relay-record/1\"}\n{\"t\":-1,\"from\":\"a\",\"text\":\"x\"}\n".utf8)
      .write(to: URL(fileURLWithPath: path))
    #expect { try RelayRecording.load(directory: dir) } throws: { "\($0)".contains(":2: $.t") }
    try Data("{\"format\":\"kensho-relay-record/1\"}\n{\"t\":1,\"from\":\"a\"}\n".utf8)
      .write(to: URL(fileURLWithPath: path))
    #expect { try RelayRecording.load(directory: dir) } throws: { "\($0)".contains(":2: expected $.text") }
  }
}
