import Foundation
import KenshoProtocol
public import KenshoRelay
public import KenshoScenario
public import KenshoVerdict
public import NIOCore
import Synchronization

/// A recording of a live relay's traffic (`kensho-bench relay --record DIR`), and its grading
/// (`kensho-bench judge DIR`): every frame any client sent, in the order the relay received
/// them, one JSON line each in `DIR/relay-record.jsonl`:
///
///     {"format":"kensho-relay-record/1","startedAt":"…"}            first line
///     {"t":12345,"from":"consumer","text":"{\"messageId\":…}"}       a text frame
///     {"t":12400,"from":"#3","binary":"AAEC"}                        a binary frame (base64)
///
/// `t` is ns since the recording started, `from` the connection's `?worker=` label (or `#N`).
public enum RelayRecording {
  public static let format = "kensho-relay-record/1"
  public static let fileName = "relay-record.jsonl"
  /// A line longer than this is refused (a frame is at most the relay's 16 MiB, base64 inflates).
  public static let maxLine = 24 << 20

  /// One recorded frame.
  public struct Frame: Sendable, Hashable {
    public var t: Int64
    public var from: String
    public var text: Bool
    public var body: [UInt8]
  }

  /// What is wrong with a recording, naming the file and line.
  public struct Problem: Error, CustomStringConvertible {
    public var description: String
  }

  /// Writes frames as the relay receives them; flushed every 100 ms and when closed. Counts the
  /// frames that are no valid KenshoMessage (KSP-1.1).
  public final class Recorder: RelayPolicy {
    private let handle: FileHandle
    private let start = ContinuousClock.now
    private let state = Mutex<(pending: [UInt8], frames: Int, invalid: Int, closed: Bool)>(([], 0, 0, false))

    public init(directory: String) throws {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      let path = (directory as NSString).appendingPathComponent(RelayRecording.fileName)
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw Problem(description: "cannot create \(path)")
      }
      guard let handle = FileHandle(forWritingAtPath: path) else { throw Problem(description: "cannot open \(path)") }
      self.handle = handle
      let header: JSONValue = [
        "format": .string(RelayRecording.format), "startedAt": .string(ISO8601DateFormatter().string(from: Date())),
      ]
      handle.write(Data((try? JSONText.serialize(header)) ?? []) + Data("\n".utf8))
    }

    /// Frames recorded, and how many of them broke KSP-1.1.
    public var counts: (frames: Int, invalid: Int) { state.withLock { ($0.frames, $0.invalid) } }

    public func received(from: String, text: Bool, bytes: ByteBuffer) {
      let body = Array(bytes.readableBytesView)
      var line: [String: JSONValue] = ["t": .int((ContinuousClock.now - start).nanoseconds), "from": .string(from)]
      var valid = false
      if text, let s = String(validating: body, as: UTF8.self) {
        line["text"] = .string(s)
        if case .success = KenshoCodec.decode(Data(body), mode: .sent) { valid = true }
      } else {
        line["binary"] = .string(Data(body).base64EncodedString())
      }
      let ping = text && (body == Array("ping".utf8))
      guard let encoded = try? JSONText.serialize(.object(line)) else { return }
      let flush: [UInt8]? = state.withLock { s in
        if s.closed { return nil }
        s.frames += 1
        if !valid && !ping { s.invalid += 1 }
        s.pending += encoded
        s.pending.append(0x0A)
        guard s.pending.count >= 1 << 20 else { return nil }
        defer { s.pending.removeAll(keepingCapacity: true) }
        return s.pending
      }
      if let flush { handle.write(Data(flush)) }
    }

    public func route(from: String, to: String, text: Bool, bytes: ByteBuffer, frame: Int) -> RelayRoute { .deliver }

    /// Writes what is pending and closes the file.
    public func close() {
      let rest: [UInt8] = state.withLock { s in
        s.closed = true
        defer { s.pending = [] }
        return s.pending
      }
      if !rest.isEmpty { handle.write(Data(rest)) }
      try? handle.close()
    }

    /// Writes what is pending (the CLI calls it now and then, so a killed relay loses little).
    public func flush() {
      let rest: [UInt8] = state.withLock { s in
        defer { s.pending.removeAll(keepingCapacity: true) }
        return s.closed ? [] : s.pending
      }
      if !rest.isEmpty { handle.write(Data(rest)) }
    }
  }

  /// Reads `DIR/relay-record.jsonl`, or says which line is wrong and why.
  public static func load(directory: String) throws(Problem) -> [Frame] {
    let path = (directory as NSString).appendingPathComponent(fileName)
    guard let data = FileManager.default.contents(atPath: path) else {
      throw Problem(description: "\(path): cannot read it (record one with `kensho-bench relay --record \(directory)`)")
    }
    var frames: [Frame] = []
    var number = 0
    for raw in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
      number += 1
      if raw.isEmpty { continue }
      guard raw.count <= maxLine else { throw Problem(description: "\(path):\(number): longer than \(maxLine) bytes") }
      guard case .success(.object(let o)) = KenshoCodec.parse(Data(raw)) else {
        throw Problem(description: "\(path):\(number): expected a JSON object")
      }
      if number == 1 {
        guard o["format"]?.stringValue == format else {
          throw Problem(description: "\(path):1: $.format: expected \"\(format)\"")
        }
        continue
      }
      guard let t = o["t"]?.doubleValue, t >= 0, t < 1e18 else {
        throw Problem(description: "\(path):\(number): $.t: expected nanoseconds (a number from 0 to 10^18)")
      }
      guard let from = o["from"]?.stringValue, from.utf8.count <= 256 else {
        throw Problem(
          description: "\(path):\(number): $.from: expected the sender's label (a string of 256 bytes at most)")
      }
      if let text = o["text"]?.stringValue {
        frames.append(Frame(t: Int64(t), from: from, text: true, body: Array(text.utf8)))
      } else if let b = o["binary"]?.stringValue, let bytes = Data(base64Encoded: b) {
        frames.append(Frame(t: Int64(t), from: from, text: false, body: Array(bytes)))
      } else {
        throw Problem(description: "\(path):\(number): expected $.text (a string) or $.binary (base64)")
      }
    }
    if number == 0 || (number == 1 && data.isEmpty) {
      throw Problem(description: "\(path): empty; expected the \(format) header line")
    }
    return frames
  }

  /// The checks a recording can decide from the wire alone; every other check needs the
  /// harness to drive the buses (it opens the streams, sees the callbacks) and is UNTESTED.
  public static let decidable: [Expectation.Kind] = [.wireValid, .tracePropagated]

  /// Grades a recording: the wire checks on every message, the rest listed as untested.
  public static func judge(_ frames: [Frame], name: String) -> ScenarioResult {
    let scenario = Scenario(name: name, agents: [], workload: [], expect: [])
    let recorder = HistoryRecorder(scenario: scenario, totalStreams: 0, sweepInterval: 60_000_000_000, meter: { nil })
    for f in frames {
      if f.text, f.body == Array("ping".utf8) { continue }  // the relay's heartbeat, not a message
      switch KenshoCodec.decode(Data(f.body), mode: .received) {
      case .success(let m):
        if m.type == .streamRequest, let streamId = m.streamId, recorder.streamIndex(streamId) == nil {
          let info = StreamInfo(
            group: 0, consumer: recorder.workerId(m.sourceWorker), producer: recorder.workerId(m.targetWorker),
            method: m.payload["method"]?.stringValue ?? "", requestPayload: m.payload.ijsonFingerprint,
            timeout: 0, plannedChunks: 0, plannedFinish: .end)
          let index = recorder.addStream(info)
          recorder.opened(index, streamId: streamId, traceId: m.traceId, at: f.t)
        }
        _ = recorder.sent(m, origin: .bus, at: f.t)
      case .failure(let rejection):
        if case .success(.object(let o)) = KenshoCodec.parse(Data(f.body)), o["type"] == .string("server_info") {
          continue
        }
        recorder.undecodable(from: f.from, problem: "\(rejection)", at: f.t)
      }
    }
    let history = recorder.finish(
      stats: [:], capabilities: [], endedAt: frames.last?.t ?? 0, complete: true, digests: [:])
    let record = RunRecord(history: history, metrics: Metrics())
    var checks = decidable.map { Judge.judge(Expectation($0), record) }
    let others = ScenarioFormat.checkNames.filter { n in !decidable.contains { $0.name == n } && n != "outcome" }
    for n in others {
      guard let kind = Expectation.Kind.named(n) else { continue }
      let e = Expectation(kind)
      checks.append(
        CheckResult(
          name: e.name, rule: e.rule, level: CheckLevel(rule: e.rule), verdict: .untested,
          expected: Judge.check(for: e).expected, observed: "situation did not occur",
          detail: "a recording has no harness driving the buses: this check needs it"))
    }
    // The verdict is the decidable checks'; the untested ones are listed, not graded.
    let verdict = checks.prefix(decidable.count).map(\.verdict).max() ?? .pass
    var result = ScenarioResult(
      name: name, file: nil, description: "A recording of a live relay's traffic, \(frames.count) frames",
      seed: 0, timeMode: "real", verdict: verdict, checks: checks, metrics: Metrics(), samples: [], error: nil)
    result.wireLog = WireLog.excerpt(record, checks: checks)
    return result
  }
}
