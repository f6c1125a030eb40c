import Foundation
import KenshoHarness
import KenshoProtocol
import Testing

/// Replays the transcript in docs/ADAPTER-PROTOCOL.md against real adapters.
@Suite("Adapter protocol transcript")
struct TranscriptTests {
  struct Line {
    var fromHarness: Bool
    var json: JSONValue
  }

  func transcript() throws -> [Line] {
    let doc = try String(contentsOf: packageRoot.appendingPathComponent("docs/ADAPTER-PROTOCOL.md"), encoding: .utf8)
    let block = try #require(
      doc.components(separatedBy: "```text\n").dropFirst().first?.components(separatedBy: "\n```").first)
    return try block.split(separator: "\n").map { line in
      let fromHarness = line.hasPrefix("> ")
      let json = try JSONText.parse(Array(line.dropFirst(2).utf8))
      return Line(fromHarness: fromHarness, json: json)
    }
  }

  /// Replaces ids with `<idN>` in order of appearance (keys sorted), so that transcripts compare.
  final class Ids {
    var byReal: [String: String] = [:]
    var byPlaceholder: [String: String] = [:]

    func normalize(_ v: JSONValue) -> JSONValue {
      switch v {
      case .object(let o):
        var out: [String: JSONValue] = [:]
        for key in o.keys.sorted() {
          guard let value = o[key] else { continue }
          if ["messageId", "streamId", "correlationId"].contains(key), case .string(let s) = value {
            if byReal[s] == nil {
              let p = "<id\(byReal.count + 1)>"
              byReal[s] = p
              byPlaceholder[p] = s
            }
            out[key] = .string(byReal[s] ?? s)
          } else {
            out[key] = normalize(value)
          }
        }
        return .object(out)
      case .array(let a): return .array(a.map(normalize))
      default: return v
      }
    }

    func substitute(_ v: JSONValue) -> JSONValue {
      switch v {
      case .object(let o): return .object(o.mapValues(substitute))
      case .array(let a): return .array(a.map(substitute))
      case .string(let s): return .string(byPlaceholder[s] ?? s)
      default: return v
      }
    }
  }

  func replay(_ command: [String]) throws {
    let lines = try transcript()
    #expect(lines.filter(\.fromHarness).count == 12)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    defer { process.terminate() }
    let ids = Ids()
    var buffered = Data()
    func readLine() throws -> JSONValue {
      while true {
        if let newline = buffered.firstIndex(of: 0x0A) {
          let line = buffered[buffered.startIndex..<newline]
          buffered = Data(buffered[buffered.index(after: newline)...])
          return try JSONText.parse(line)
        }
        let more = output.fileHandleForReading.availableData
        guard !more.isEmpty else { throw CocoaError(.fileReadUnknown) }
        buffered.append(more)
      }
    }
    for line in lines {
      if line.fromHarness {
        var data = try JSONText.serialize(ids.substitute(line.json))
        data.append(0x0A)
        try input.fileHandleForWriting.write(contentsOf: data)
      } else {
        var got = ids.normalize(try readLine())
        var expected = line.json
        // Only the handshake's self-description differs between implementations.
        if case .object(var g) = got, case .object(var e) = expected, g["id"] == 1 {
          g["implementation"] = nil
          e["implementation"] = nil
          got = .object(g)
          expected = .object(e)
        }
        #expect(got == expected)
      }
    }
  }

  @Test("the JavaScript adapter answers the documented transcript line for line", .enabled(if: hasNode, "needs node"))
  func javascript() throws {
    // The transcript is a session without a relay; `relay` is documented in its own section.
    try replay(try ShellWords.split(nodeAdapter) + ["--without-capability", "relay"])
  }

  @Test("the reference adapter answers the documented transcript line for line")
  func reference() throws {
    try replay([builtProduct("kensho-ref-adapter")])
  }
}
