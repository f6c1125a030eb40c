import Foundation
import KenshoAdapterProtocol
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Testing

@testable import KenshoHarness

/// Fuzzes the path from the bytes an adapter writes on stdout to parsed events: LineSplitter
/// (bytes → lines, fed in reads of random sizes), `AdapterProcess.event(from:)` (line → event)
/// and `AdapterProcess.line(from:answering:source:)` (the checks against the declaration). The lines are valid events,
/// mutated: huge numbers, wrong types, missing fields, control characters, deep nesting, very
/// long strings, invalid UTF-8, truncation, stray bytes.
///
/// `swift test` runs a short seeded run. A long one, for example 100 000 lines:
///
///     KENSHO_FUZZ_LINES=100000 KENSHO_FUZZ_SEED=7 swift test --filter AdapterFuzzTests
///
/// A failure names its seed and line, so that it can be replayed.
@Suite("Adapter line fuzzing")
struct AdapterFuzzTests {
  static let environment = ProcessInfo.processInfo.environment
  static let lines = environment["KENSHO_FUZZ_LINES"].flatMap { Int($0) } ?? 3000
  static let seed = environment["KENSHO_FUZZ_SEED"].flatMap { UInt64($0) } ?? 14
  /// Smaller than the real 64 MiB, so that the over-long path is taken often.
  static let maxLine = 256 << 10

  @Test("mutated adapter output never crashes the reader and is judged consistently")
  func fuzzLines() throws {
    var fuzzer = LineFuzzer(seed: Self.seed)
    var stats = (lines: 0, bytes: 0, events: 0, rejected: 0, tooLong: 0, batches: 0, hot: 0)
    /// Time spent in the reader's code (splitting and parsing), apart from making lines and checking.
    var reading = Duration.zero
    var failures: [String] = []
    let started = ContinuousClock.now
    while stats.lines < Self.lines && failures.count < 10 {
      // One batch: a fresh splitter (an over-long line ends a reader for good).
      stats.batches += 1
      var generated: [(bytes: [UInt8], original: JSONValue?)] = []
      var stream: [UInt8] = []
      for _ in 0..<fuzzer.int(1...60) {
        let line = fuzzer.line()
        generated.append(line)
        stream += line.bytes
        stream += fuzzer.chance(0.05) ? [0x0D, 0x0A] : [0x0A]
        if fuzzer.chance(0.03) { stream += [0x20, 0x09, 0x0A] }  // a blank line
      }
      stats.lines += generated.count
      stats.bytes += stream.count

      // The reference: split at every newline, skip blank lines, stop at the first too long.
      var expected: [[UInt8]] = []
      var expectTooLong = false
      for piece in stream.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
        if LineSplitter.isBlank(Array(piece)) { continue }
        if piece.count > Self.maxLine {
          expectTooLong = true
          break
        }
        expected.append(Array(piece))
      }

      let splitStarted = ContinuousClock.now
      var splitter = LineSplitter(maxLine: Self.maxLine)
      var got: [[UInt8]] = []
      var tooLong = false
      var offset = 0
      while offset < stream.count && !tooLong {
        let size = min(stream.count - offset, fuzzer.readSize())
        do {
          try stream[offset..<offset + size].withUnsafeBytes { chunk in
            try splitter.feed(chunk) { got.append($0) }
          }
        } catch {
          tooLong = true
        }
        offset += size
      }
      reading += ContinuousClock.now - splitStarted
      if tooLong { stats.tooLong += 1 }
      let context = "seed \(Self.seed), batch \(stats.batches)"
      if got != expected || tooLong != expectTooLong {
        failures.append(
          "\(context): the splitter gave \(got.count) lines (too long: \(tooLong)), expected \(expected.count) (\(expectTooLong))"
        )
        continue
      }

      // Each line: an event, or a problem fit for a report.
      let originals = Dictionary(
        generated.compactMap { g in g.original.map { (g.bytes, $0) } }, uniquingKeysWith: { a, _ in a })
      for (i, line) in got.enumerated() {
        let place = "\(context), line \(i): \(AdapterProcess.excerpt(line, max: 80))"
        // The hot path reads what it reads as the general path does.
        if HotLine.decode(line) != nil { stats.hot += 1 }
        if let why = HotLineAgreement.disagreement(line) { failures.append("\(place): hot path: \(why)") }
        let parseStarted = ContinuousClock.now
        let parsed = AdapterProcess.event(from: line)
        reading += ContinuousClock.now - parseStarted
        switch parsed {
        case .success(let event):
          stats.events += 1
          guard event["event"]?.stringValue != nil, JSONValue.object(event).allFinite else {
            failures.append("\(place): accepted without a string \"event\" or with a non-finite number")
            continue
          }
          // What was accepted can be written again and reads back the same.
          guard let text = try? JSONText.serialize(.object(event)), (try? JSONText.parse(text)) == .object(event) else {
            failures.append("\(place): accepted, but does not survive a round trip")
            continue
          }
          if let original = originals[line], original != .object(event) {
            failures.append("\(place): an unmutated event read back different")
          }
          // The typed reading: accepted, or refused with a problem fit for a report.
          if case .failure(let problem) = AdapterProcess.line(from: line, answering: "chunks", source: "line \(i)"),
            !Self.printable(problem.description) || problem.description.utf8.count > 800
          {
            failures.append(
              "\(place): the line's problem is not fit for a report: \(problem.description.debugDescription)")
          }
        case .failure(let problem):
          stats.rejected += 1
          if originals[line] != nil { failures.append("\(place): an unmutated event was refused: \(problem)") }
          if !Self.printable(problem.description) || problem.description.utf8.count > 800 {
            failures.append("\(place): the problem is not fit for a report: \(problem.description.debugDescription)")
          }
        }
      }
    }
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    let total = seconds(ContinuousClock.now - started)
    let reader = max(seconds(reading), 1e-9)
    print(
      "adapter line fuzz (seed \(Self.seed)): \(stats.lines) lines, \(stats.bytes >> 10) KiB in "
        + String(format: "%.2f s (%.0f lines/s all told); ", total, Double(stats.lines) / total)
        + String(
          format: "the reader: %.2f s, %.0f lines/s, %.1f MiB/s; ", reader, Double(stats.lines) / reader,
          Double(stats.bytes) / reader / 1_048_576)
        + "\(stats.events) events, \(stats.rejected) lines refused, \(stats.tooLong) batches ended by an over-long line"
    )
    #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    #expect(
      stats.events > 0 && stats.rejected > 0 && stats.tooLong > 0 && stats.hot > 0,
      "the fuzzer covers too little: \(stats)")
  }

  static func printable(_ text: String) -> Bool {
    !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
  }
}

/// Lines of adapter output: valid events, most of them mutated. Deterministic for a seed.
struct LineFuzzer {
  var rng: SplitMix64

  init(seed: UInt64) {
    rng = SplitMix64(seed: seed)
  }

  mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
  mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
  mutating func pick<T>(_ items: [T]) -> T { items[int(0...items.count - 1)] }

  /// The size of one read from the pipe: mostly small, sometimes the whole buffer.
  mutating func readSize() -> Int {
    pick([1, 2, 7, 64, 512, 4096, 65536, int(1...100_000)])
  }

  mutating func id() -> JSONValue { .string("\(pick(["x7", "abc-12", "stream-0", ""]))\(int(0...1_000_000))") }

  /// A valid event of each kind an adapter writes.
  mutating func event() -> JSONValue {
    let worker: JSONValue = .string(pick(["consumer", "producer", "w-1", "é ✓", "producer"]))
    let streamId = id()
    switch int(0...6) {
    case 0:
      return [
        "event": "send", "worker": worker,
        "message": [
          "type": "stream_chunk", "messageId": id(), "streamId": streamId, "sourceWorker": worker,
          "targetWorker": "consumer", "payload": payload(), "metadata": ["seq": .int(Int64(int(0...10_000)))],
        ],
      ]
    case 1: return ["event": "handler", "worker": worker, "method": "numbers", "streamId": streamId, "args": payload()]
    case 2: return ["event": "chunk", "worker": worker, "streamId": streamId, "data": payload()]
    case 3: return ["event": "end", "worker": worker, "streamId": streamId, "summary": ["count": 5]]
    case 4:
      return [
        "event": "error", "worker": worker, "streamId": streamId,
        "error": ["name": "Error", "message": "boom", "code": "STREAM_TIMEOUT"],
      ]
    case 5: return ["event": "credit", "worker": worker, "streamId": streamId]
    default:
      return [
        "event": "ack", "id": 1, "nextTimerMs": chance(0.5) ? .null : .int(Int64(int(0...600_000))),
        "streamId": streamId, "result": "ok", "sent": .int(Int64(int(0...256))),
        "stats": ["activeStreams": 0, "emitters": 0, "dropped": [:], "callbackFailures": 0, "received": 2, "sent": 1],
      ]
    }
  }

  mutating func payload() -> JSONValue {
    switch int(0...4) {
    case 0: return .int(Int64(int(-1000...1000)))
    case 1: return .double(Double(int(0...1000)) / 7)
    case 2: return .string(String(repeating: "ab\"\\/\u{1F600}", count: int(0...20)))
    case 3: return .array([1, "two", ["three": .null], .bool(false)])
    default: return .null
    }
  }

  /// One line, and the event it is when no mutation touched it.
  mutating func line() -> (bytes: [UInt8], original: JSONValue?) {
    var value = event()
    let original = value
    var mutated = false
    for _ in 0..<pick([0, 0, 1, 1, 2, 3]) {
      mutate(&value, depth: 0)
      mutated = true
    }
    var bytes: [UInt8]
    do {
      bytes = try JSONText.serialize(value)
    } catch {
      bytes = Array("{\"event\":\"chunk\",\"data\":1e999}".utf8)
      mutated = true
    }
    if chance(0.5) {
      for _ in 0..<int(1...3) { mutateText(&bytes) }
      mutated = true
    }
    // A mutation may have given back valid text: only the unmutated lines are checked as such.
    return (bytes, mutated ? Optional<JSONValue>.none : Optional.some(original))
  }

  /// A structural mutation somewhere in the tree.
  mutating func mutate(_ value: inout JSONValue, depth: Int) {
    switch value {
    case .object(var members) where !members.isEmpty && chance(0.6):
      let key = pick(members.keys.sorted())
      if chance(0.25) {
        members[key] = nil  // a missing field
      } else if var child = members[key] {
        mutate(&child, depth: depth + 1)
        members[key] = child
      }
      value = .object(members)
    case .array(var items) where !items.isEmpty && chance(0.6):
      let i = int(0...items.count - 1)
      mutate(&items[i], depth: depth + 1)
      value = .array(items)
    default:
      value = replacement(for: value)
    }
  }

  mutating func replacement(for value: JSONValue) -> JSONValue {
    switch int(0...9) {
    case 0:
      // A wrong type.
      return pick([.null, .bool(true), .int(-1), .string("7"), .array([]), .object([:]), .int(.max), .int(.min)])
    case 1:
      return .double(
        pick([1e308, -1e308, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -0.0, 9_007_199_254_740_992]))
    case 2:
      // Deep nesting, around the parser's limit of 512.
      var v = value
      for _ in 0..<pick([10, 300, 511, 513, 700]) { v = chance(0.5) ? .array([v]) : .object(["k": v]) }
      return v
    case 3:
      // A very long string: sometimes longer than the line limit.
      return .string(String(repeating: "x", count: pick([1000, 65536, 200_000, chance(0.2) ? 300_000 : 10])))
    case 4: return .string(String(decoding: (0..<int(1...40)).map { _ in UInt8(int(0...31)) }, as: UTF8.self))
    case 5: return .object(["unexpected": value, "event": pick(["ack", "send", "", "\u{0}"])])
    default: return pick(["ack", "send", "chunk", .int(1), .null])
    }
  }

  /// A mutation of the text: stray bytes where JSON allows none.
  mutating func mutateText(_ bytes: inout [UInt8]) {
    let at = bytes.isEmpty ? 0 : int(0...bytes.count - 1)
    switch int(0...8) {
    case 0:
      // A huge number where a number was.
      if let digit = bytes.firstIndex(where: { (0x30...0x39).contains($0) }) {
        var end = digit
        while end < bytes.count && (0x30...0x39).contains(bytes[end]) { end += 1 }
        let huge = pick([
          "1e999", "-1e999", String(repeating: "9", count: 400), "1e-999", "123456789012345678901234567890",
        ])
        bytes.replaceSubrange(digit..<end, with: Array(huge.utf8))
      }
    case 1: bytes.insert(UInt8(int(0...31)), at: at)  // a raw control character, newline included
    case 2:
      bytes.insert(
        contentsOf: pick([[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80]]), at: at)
    case 3: bytes.removeSubrange(at...)  // truncated
    case 4: if !bytes.isEmpty { bytes[at] = UInt8(int(0...255)) }
    case 5: bytes.insert(contentsOf: Array(pick(["\\x", "\\ud800", "\\udc00", "\\u12", "\\"]).utf8), at: at)
    case 6: bytes += bytes  // two objects on one line
    case 7: bytes = Array(pick(["", " ", "\t\r", "null", "[]", "\"event\"", "{}", "{\"event\":\"ack\"}"]).utf8) + bytes
    default: bytes.insert(contentsOf: [0x20, 0x0D, 0x09], at: at)
    }
  }
}
