import Foundation
import KenshoAdapterProtocol
import KenshoProtocol
import KenshoScenario
import Testing

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

@Suite("The adapter protocol, declared once")
struct AdapterProtocolTests {
  @Test("the committed JSON Schema is the one written from the declaration")
  func committedSchemaIsGenerated() throws {
    let committed = try String(
      contentsOf: packageRoot.appendingPathComponent(AdapterProtocolSchema.committedPath), encoding: .utf8)
    let generated = AdapterProtocolSchema.text
    guard committed != generated else { return }
    let a = committed.split(separator: "\n", omittingEmptySubsequences: false)
    let b = generated.split(separator: "\n", omittingEmptySubsequences: false)
    let line = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    Issue.record(
      """
      \(AdapterProtocolSchema.committedPath) differs from the declaration, from line \(line + 1). Write it again \
      with: \(AdapterProtocolSchema.regenerate)
      """)
  }

  static let everyOperation: [AdapterOperation] = [
    .hello,
    .configure(
      AdapterConfiguration(
        workers: ["consumer", "producer"], streamTimeoutMs: 300_000, sweepIntervalMs: 60_000, seed: -7,
        creditWindow: 16, relay: .init(url: "ws://127.0.0.1:9/", token: "t", connectTimeoutMs: 500))),
    .configure(AdapterConfiguration(workers: ["w"], streamTimeoutMs: 1, sweepIntervalMs: 1, seed: 1)),
    .register(worker: "p", method: "numbers", throws: SerializedError(name: "Error", message: "boom", code: "X")),
    .register(worker: "p", method: "numbers", throws: nil),
    .call(
      worker: "c",
      AdapterCall(
        target: "p", method: "numbers", args: ["count": 3], timeoutMs: 5000, creditWindow: 4, traceId: "trace-1",
        throwIn: ["onChunk", "onEnd"])),
    .call(worker: "c", AdapterCall(target: "p", method: "m", args: .null)),
    .cancel(worker: "c", streamId: "s1", reason: "enough"),
    .chunk(worker: "p", streamId: "s1", data: [1, "two"]),
    .chunks(worker: "p", streamId: "s1", data: [1, 2, 3]),
    .end(worker: "p", streamId: "s1", summary: ["chunks": 3]),
    .error(worker: "p", streamId: "s1", error: SerializedError(name: "TypeError", message: "no")),
    .deliver(worker: "c", messages: [["type": "stream_chunk"]]),
    .peerDown(worker: "c", peer: "p"),
    .advance(worker: "c", toMs: 60_000),
    .advance(worker: nil, toMs: 0.5),
    .stats(worker: "c"),
    .memory(worker: "c"),
    .memory(worker: nil),
    .heapSnapshot(path: "/tmp/x.heapsnapshot"),
    .dispose(worker: "c"),
    .shutdown,
  ]

  @Test("every operation the harness writes reads back as itself, and matches its declaration")
  func operationsRoundTrip() throws {
    var names: Set<String> = []
    for (i, op) in Self.everyOperation.enumerated() {
      names.insert(op.name)
      let line = try JSONText.parse(JSONText.serialize(op.json(id: i)))
      switch AdapterOperation.decode(line, source: "test") {
      case .success(let (id, back)):
        #expect(id == i)
        #expect(back == op, "\(op.name)")
      case .failure(let error): Issue.record("\(op.name): \(error)")
      }
    }
    #expect(names == Set(AdapterProtocolFormat.operations.map(\.name)), "every declared operation is covered")
  }

  static let everyEvent: [AdapterEvent] = [
    .send(worker: "c", message: ["type": "stream_request"]),
    .handler(worker: "p", method: "numbers", streamId: "s1", args: ["count": 1]),
    .callback(.chunk, worker: "c", streamId: "s1", value: 7),
    .callback(.end, worker: "c", streamId: "s1", value: ["count": 1]),
    .callback(.error, worker: "c", streamId: nil, value: ["name": "Error", "message": "m"]),
    .credit(worker: "p", streamId: "s1"),
    .log(worker: nil, message: "hello"),
  ]

  @Test("every event an adapter writes reads back as itself")
  func eventsRoundTrip() throws {
    var names: Set<String> = []
    for event in Self.everyEvent {
      names.insert(event.name)
      switch AdapterLine.decode(event.json, answering: "deliver", source: "test") {
      case .success(.event(let back)): #expect(back == event)
      case let other: Issue.record("\(event.name): \(other)")
      }
    }
    #expect(names == Set(AdapterProtocolFormat.events.map(\.name)))
  }

  /// The first problem with `line` read as the answer to `op`, or nil when it is accepted.
  func problem(_ line: JSONValue, answering op: String = "call") -> String? {
    switch AdapterLine.decode(line, answering: op, source: "stdout line 3") {
    case .success: return nil
    case .failure(let error): return error.description
    }
  }

  @Test("an ack is checked against the ack of the operation it answers")
  func acksByOperation() {
    #expect(problem(["event": "ack", "id": 1, "nextTimerMs": .null, "streamId": "s"]) == nil)
    #expect(
      problem(["event": "ack", "id": 1, "nextTimerMs": .null])
        == "stdout line 3: $.streamId: expected a string of 1 to 1024 characters, found nothing")
    #expect(
      problem(["event": "ack", "id": 1, "result": "maybe"], answering: "chunk")
        == "stdout line 3: $.result: expected \"ok\", \"closed\", \"cancelled\" or \"no_credit\", found \"maybe\"")
    #expect(problem(["event": "ack", "id": 1, "result": true], answering: "cancel") == nil)
    #expect(
      problem(["event": "ack", "id": 1, "result": "ok", "sent": -1], answering: "chunks")?.hasPrefix(
        "stdout line 3: $.sent: expected an integer from 0 to") == true)
    #expect(
      problem(["event": "ack", "id": 1, "stats": ["activeStreams": 0]], answering: "stats")
        == "stdout line 3: $.stats.emitters: expected an integer from 0 to \(AdapterProtocolFormat.maxCount), found nothing"
    )
    #expect(
      problem(["event": "ack", "id": 1, "memory": ["heapUsedBytes": 1.5]], answering: "memory")?.hasPrefix(
        "stdout line 3: $.memory.heapUsedBytes: expected an integer") == true)
    // A failed operation need not carry its results.
    #expect(problem(["event": "ack", "id": 1, "error": "no worker here"]) == nil)
    // A result the operation does not declare is a misspelling, not something to ignore.
    #expect(
      problem(["event": "ack", "id": 1, "streamId": "s", "streamID": "s"])?.contains(
        "$.streamID: expected one of the members") == true)
  }

  @Test("nextTimerMs is null, absent, or a time in ms in range")
  func nextTimer() {
    for good: JSONValue in [.null, 0, 60_000, .double(1.5), .double(9e12)] {
      #expect(problem(["event": "ack", "id": 4, "nextTimerMs": good], answering: "advance") == nil)
    }
    #expect(problem(["event": "ack", "id": 4], answering: "advance") == nil)
    for bad: JSONValue in [.double(9.1e12), -1, "soon", .bool(true), [1]] {
      let p = problem(["event": "ack", "id": 4, "nextTimerMs": bad], answering: "advance")
      #expect(
        p?.hasPrefix("stdout line 3: $.nextTimerMs: expected a time in ms from 0 to 9000000000000 or null") == true)
    }
  }

  @Test("an event is checked against its declaration: kind, members, types")
  func eventsChecked() {
    #expect(
      problem(["event": "chunkz", "worker": "c"])?.hasPrefix("stdout line 3: $.event: expected one of send, handler")
        == true)
    #expect(problem(["worker": "c"])?.hasPrefix("stdout line 3: $.event: expected one of") == true)
    #expect(
      problem(["event": "chunk", "worker": "c", "streamId": "s"])
        == "stdout line 3: $.data: expected a JSON value, found nothing")
    #expect(
      problem(["event": "handler", "worker": "p", "method": 7, "streamId": "s", "args": .null])
        == "stdout line 3: $.method: expected a string, found 7")
    #expect(
      problem(["event": "credit", "worker": "", "streamId": "s"])
        == "stdout line 3: $.worker: expected a string of 1 to 256 characters, found \"\"")
    #expect(
      problem(["event": "send", "worker": "c", "message": [:], "extra": 1])?.hasPrefix(
        "stdout line 3: $.extra: expected only event, message, worker with event \"send\"") == true)
    // Several problems: the first, and how many more.
    #expect(
      problem(["event": "handler", "worker": 1, "method": 2, "streamId": 3, "args": .null])?.hasSuffix(
        "(and 2 more problems)") == true)
  }

  @Test("an operation that breaks the declaration is refused with its path")
  func operationsChecked() {
    func problem(_ line: JSONValue) -> String? {
      switch AdapterOperation.decode(line, source: "stdin line 1") {
      case .success: return nil
      case .failure(let error): return error.description
      }
    }
    #expect(problem(["op": "stats", "id": 1, "worker": "c"]) == nil)
    #expect(
      problem(["op": "stats", "id": 1])
        == "stdin line 1: $.worker: expected a string of 1 to 256 characters, found nothing")
    #expect(
      problem(["op": "stats", "id": -1, "worker": "c"])?.hasPrefix("stdin line 1: $.id: expected an integer") == true)
    #expect(problem(["op": "fly", "id": 1])?.hasPrefix("stdin line 1: $.op: expected one of hello, configure") == true)
    #expect(
      problem(["op": "hello", "id": 1, "protocol": "kensho-adapter/2"])
        == "stdin line 1: $.protocol: expected \"kensho-adapter/1\", found \"kensho-adapter/2\"")
    #expect(
      problem(["op": "call", "id": 1, "worker": "c", "target": "p", "method": "m", "args": 1, "throwIn": ["onStart"]])
        == "stdin line 1: $.throwIn[0]: expected \"onChunk\", \"onEnd\" or \"onError\", found \"onStart\"")
  }

  // MARK: The documentation

  /// The rows of the markdown table whose header starts with `| header |`: first cell, second
  /// cell, last cell.
  func table(_ header: String) throws -> [(name: String, members: String, last: String)] {
    let doc = try String(
      contentsOf: packageRoot.appendingPathComponent("docs/ADAPTER-PROTOCOL.md"), encoding: .utf8)
    let lines = doc.split(separator: "\n", omittingEmptySubsequences: false)
    let start = try #require(lines.firstIndex { $0.hasPrefix("| \(header) |") }, "no table \(header)")
    var rows: [(String, String, String)] = []
    for line in lines[(start + 2)...] {
      guard line.hasPrefix("|") else { break }
      let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
        .map { $0.trimmingCharacters(in: .whitespaces) }
      rows.append((cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")), cells[1], cells.last ?? ""))
    }
    return rows
  }

  /// The members a cell names at its top level, `name` or `name?` (optional): backticked words
  /// outside braces, up to a colon.
  func members(_ cell: String) -> [String: Bool] {
    var out: [String: Bool] = [:]
    var depth = 0
    var text = Substring(cell)
    if let colon = text.firstIndex(of: ":") { text = text[..<colon] }
    var rest = text
    while let open = rest.firstIndex(where: { $0 == "`" || $0 == "{" || $0 == "}" }) {
      let c = rest[open]
      rest = rest[rest.index(after: open)...]
      if c == "{" {
        depth += 1
        continue
      }
      if c == "}" {
        depth -= 1
        continue
      }
      guard let close = rest.firstIndex(of: "`") else { break }
      let name = String(rest[..<close])
      rest = rest[rest.index(after: close)...]
      if depth == 0 { out[name] = rest.hasPrefix("?") }
    }
    return out
  }

  @Test("docs/ADAPTER-PROTOCOL.md lists every operation with exactly its declared members and ack results")
  func documentedOperations() throws {
    let rows = try table("op")
    #expect(rows.map(\.name) == AdapterProtocolFormat.operations.map(\.name))
    for (op, row) in zip(AdapterProtocolFormat.operations, rows) {
      let declared = Dictionary(uniqueKeysWithValues: op.fields.map { ($0.name, !$0.required) })
      #expect(members(row.members) == declared, "members of \(op.name)")
      let results = Set((AdapterProtocolFormat.ackResults[op.name] ?? []).map(\.name))
      #expect(Set(members(row.last).keys) == results, "ack of \(op.name)")
    }
  }

  @Test("docs/ADAPTER-PROTOCOL.md lists every event with exactly its declared members")
  func documentedEvents() throws {
    let rows = try table("event")
    #expect(rows.map(\.name) == AdapterProtocolFormat.events.map(\.name) + ["ack"])
    for (event, row) in zip(AdapterProtocolFormat.events, rows) {
      let declared = Dictionary(uniqueKeysWithValues: event.fields.map { ($0.name, !$0.required) })
      #expect(members(row.members) == declared, "members of \(event.name)")
    }
    #expect(members(rows.last?.members ?? "") == ["id": false, "nextTimerMs": true, "error": true])
  }

  @Test("every line of the documented transcript is valid: operations, events, and acks for their operation")
  func documentedTranscript() throws {
    let doc = try String(
      contentsOf: packageRoot.appendingPathComponent("docs/ADAPTER-PROTOCOL.md"), encoding: .utf8)
    let block = try #require(
      doc.components(separatedBy: "```text\n").dropFirst().first?.components(separatedBy: "\n```").first)
    var lastOp = ""
    var count = 0
    for (i, line) in block.split(separator: "\n").enumerated() {
      let json = try JSONText.parse(Array(line.dropFirst(2).utf8))
      count += 1
      if line.hasPrefix("> ") {
        switch AdapterOperation.decode(json, source: "transcript line \(i + 1)") {
        case .success(let (_, op)): lastOp = op.name
        case .failure(let error): Issue.record("\(error)")
        }
      } else if case .failure(let error) = AdapterLine.decode(
        json, answering: lastOp, source: "transcript line \(i + 1)")
      {
        Issue.record("\(error)")
      }
    }
    #expect(count > 20)
  }
}

@Suite("The adapter protocol's schema, read by another validator")
struct AdapterSchemaAgreementTests {
  /// Lines and the operation they answer (">" for an operation): valid ones, and each mutated
  /// in every member (removed, or replaced by a value of another type).
  static func corpus() -> [(op: String, line: JSONValue)] {
    var valid: [(String, JSONValue)] = AdapterProtocolTests.everyOperation.enumerated().map { (">", $1.json(id: $0)) }
    valid += AdapterProtocolTests.everyEvent.map { ("call", $0.json) }
    valid += [
      ("call", AdapterAck(id: 1, nextTimerMs: 60_000, results: ["streamId": "s"]).json),
      ("chunks", AdapterAck(id: 2, results: ["result": "no_credit", "sent": 3]).json),
      ("cancel", AdapterAck(id: 3, results: ["result": true]).json),
      (
        "stats",
        AdapterAck(id: 4, results: ["stats": ["activeStreams": 1, "emitters": 0, "dropped": ["duplicate": 2]]]).json
      ),
      ("memory", AdapterAck(id: 5, results: ["memory": ["heapUsedBytes": 1024, "residentBytes": 4096]]).json),
      (
        "hello",
        AdapterAck(
          id: 6,
          results: [
            "protocol": "kensho-adapter/1", "implementation": ["name": "x", "version": "1", "language": "c"],
            "capabilities": ["virtual_time"],
          ]
        ).json
      ),
      ("end", AdapterAck(id: 7, error: "no such stream").json),
    ]
    var out = valid
    let replacements: [JSONValue] = [.null, .bool(true), -1, .double(0.5), "", "x", [], [:], .double(1e13)]
    for (op, line) in valid {
      guard case .object(let members) = line else { continue }
      for key in members.keys.sorted() {
        var removed = members
        removed[key] = nil
        out.append((op, .object(removed)))
        for (i, r) in replacements.enumerated() where (i + key.count) % 3 == 0 {
          var replaced = members
          replaced[key] = r
          out.append((op, .object(replaced)))
        }
      }
      var extra = members
      extra["unexpected"] = 1
      out.append((op, .object(extra)))
    }
    return out
  }

  @Test("python3-jsonschema and the Swift checker agree on every line of a mutated corpus")
  func agreement() throws {
    let corpus = Self.corpus()
    var input = ""
    for (op, line) in corpus {
      input += op + "\t" + String(decoding: try JSONText.serialize(line), as: UTF8.self) + "\n"
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "python3", packageRoot.appendingPathComponent("Tests/Fixtures/validate-adapter-lines.py").path,
      packageRoot.appendingPathComponent(AdapterProtocolSchema.committedPath).path,
    ]
    let stdin = Pipe()
    let stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = FileHandle.nullDevice
    try process.run()
    let bytes = Data(input.utf8)
    let writer = Thread {
      stdin.fileHandleForWriting.write(bytes)
      try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus == 77 {
      print("SKIP: python3-jsonschema is not installed")
      return
    }
    #expect(process.terminationStatus == 0)
    let verdicts = output.split(separator: "\n")
    try #require(verdicts.count == corpus.count, "one verdict a line")
    var disagreements: [String] = []
    var invalid = 0
    for ((op, line), verdict) in zip(corpus, verdicts) {
      let swiftOK: Bool
      if op == ">" {
        if case .success = AdapterOperation.decode(line, source: "corpus") { swiftOK = true } else { swiftOK = false }
      } else {
        if case .success = AdapterLine.decode(line, answering: op, source: "corpus") {
          swiftOK = true
        } else {
          swiftOK = false
        }
      }
      if !swiftOK { invalid += 1 }
      if swiftOK != (verdict == "ok") {
        let text = String(decoding: (try? JSONText.serialize(line)) ?? [], as: UTF8.self)
        disagreements.append("\(op) \(text): Swift \(swiftOK ? "ok" : "invalid"), schema \(verdict)")
      }
    }
    #expect(disagreements.isEmpty, "\(disagreements.count) of \(corpus.count): \(disagreements.prefix(5))")
    #expect(invalid > corpus.count / 3, "the corpus holds invalid lines too")
  }
}
