public import KenshoProtocol
import KenshoScenario

/// A consumer callback an implementation reports.
public enum CallbackEvent: String, Sendable, Hashable, CaseIterable {
  case chunk, end, error
}

/// One line an implementation writes, other than an ack, as declared in
/// ``AdapterProtocolFormat/events``.
public enum AdapterEvent: Sendable, Hashable {
  /// A KenshoMessage the worker's bus sent, as it wrote it (judged by KSP-1.1, not here).
  case send(worker: String, message: JSONValue)
  case handler(worker: String, method: String, streamId: String, args: JSONValue)
  /// A consumer callback ran: `value` is the chunk's data, the end's summary or the error.
  /// `streamId` is nil when it ran before `callAgentStream` returned the id.
  case callback(CallbackEvent, worker: String, streamId: String?, value: JSONValue)
  case credit(worker: String, streamId: String)
  case log(worker: String?, message: String)

  public var name: String {
    switch self {
    case .send: "send"
    case .handler: "handler"
    case .callback(let kind, _, _, _): kind.rawValue
    case .credit: "credit"
    case .log: "log"
    }
  }

  public var worker: String? {
    switch self {
    case .send(let w, _), .handler(let w, _, _, _), .callback(_, let w, _, _), .credit(let w, _): w
    case .log(let w, _): w
    }
  }

  /// Its line, without the newline, as `JSONText.serialize(json)` writes it, written without
  /// making the object (the adapter's hot path).
  public func write(into out: inout [UInt8]) throws(JSONText.ParseError) {
    if case .callback(let kind, let worker, let streamId, let value) = self {
      // The line of every chunk a consumer sees: members written in their sorted order.
      func streamIdMember() {
        out.append(contentsOf: #","streamId":"#.utf8)
        if let streamId { JSONText.append(string: streamId, to: &out) } else { out.append(contentsOf: "null".utf8) }
      }
      switch kind {
      case .chunk:
        out.append(contentsOf: #"{"data":"#.utf8)
        try JSONText.append(value, to: &out)
        out.append(contentsOf: #","event":"chunk""#.utf8)
        streamIdMember()
      case .end:
        out.append(contentsOf: #"{"event":"end""#.utf8)
        streamIdMember()
        out.append(contentsOf: #","summary":"#.utf8)
        try JSONText.append(value, to: &out)
      case .error:
        out.append(contentsOf: #"{"error":"#.utf8)
        try JSONText.append(value, to: &out)
        out.append(contentsOf: #","event":"error""#.utf8)
        streamIdMember()
      }
      out.append(contentsOf: #","worker":"#.utf8)
      JSONText.append(string: worker, to: &out)
      out.append(UInt8(ascii: "}"))
      return
    }
    var o: [(String, JSONValue)] = [("event", .string(name))]
    if let worker { o.append(("worker", .string(worker))) }
    switch self {
    case .send(_, let message): o.append(("message", message))
    case .handler(_, let method, let streamId, let args):
      o += [("method", .string(method)), ("streamId", .string(streamId)), ("args", args)]
    case .callback(let kind, _, let streamId, let value):
      o += [("streamId", streamId.map { .string($0) } ?? .null), (kind.member, value)]
    case .credit(_, let streamId): o.append(("streamId", .string(streamId)))
    case .log(_, let message): o.append(("message", .string(message)))
    }
    try JSONText.writeObject(o, into: &out)
  }

  /// The line of `.send(worker:message:)` for `message`, written from the message itself.
  public static func writeSend(worker: String, message: KenshoMessage, into out: inout [UInt8])
    throws(JSONText.ParseError)
  {
    out.append(contentsOf: #"{"event":"send","message":"#.utf8)
    try KenshoCodec.write(message, into: &out)
    out.append(contentsOf: #","worker":"#.utf8)
    JSONText.append(string: worker, to: &out)
    out.append(UInt8(ascii: "}"))
  }

  /// Its line, without the newline.
  public var json: JSONValue {
    var o: [String: JSONValue] = ["event": .string(name)]
    if let worker { o["worker"] = .string(worker) }
    switch self {
    case .send(_, let message): o["message"] = message
    case .handler(_, let method, let streamId, let args):
      o["method"] = .string(method)
      o["streamId"] = .string(streamId)
      o["args"] = args
    case .callback(let kind, _, let streamId, let value):
      o["streamId"] = streamId.map { .string($0) } ?? .null
      o[kind.member] = value
    case .credit(_, let streamId): o["streamId"] = .string(streamId)
    case .log(_, let message): o["message"] = .string(message)
    }
    return .object(o)
  }
}

extension CallbackEvent {
  /// The member that holds what the callback received.
  public var member: String {
    switch self {
    case .chunk: "data"
    case .end: "summary"
    case .error: "error"
    }
  }
}

/// The answer to one operation: its id, the next timer's deadline, a failure if any, and the
/// results the operation declares (``AdapterProtocolFormat/ackResults``), checked.
public struct AdapterAck: Sendable, Hashable {
  public var id: Int
  /// The deadline of the process's next timer, in ms of virtual time.
  public var nextTimerMs: Double?
  /// Why the operation failed, when it did (any JSON the adapter gave, not null).
  public var error: JSONValue?
  /// The results, as checked (members the operation does not declare are refused).
  public var results: [String: JSONValue]

  public init(id: Int, nextTimerMs: Double? = nil, error: JSONValue? = nil, results: [String: JSONValue] = [:]) {
    self.id = id
    self.nextTimerMs = nextTimerMs
    self.error = error
    self.results = results
  }

  /// Its line, without the newline.
  public var json: JSONValue {
    var o = results
    o["event"] = "ack"
    o["id"] = .int(Int64(id))
    o["nextTimerMs"] = nextTimerMs.map { .double($0) } ?? .null
    if let error { o["error"] = error }
    return .object(o)
  }

  // Typed results (present when the ack is of the operation that declares them).

  public var streamId: String? { results["streamId"]?.stringValue }
  public var emitResult: EmitResult? { results["result"]?.stringValue.flatMap(EmitResult.init(rawValue:)) }
  public var cancelled: Bool? { results["result"]?.boolValue }
  public var sent: Int? { results["sent"]?.intValue.map { Int($0) } }
  public var stats: [String: JSONValue]? { results["stats"]?.objectValue }
  public var heapUsedBytes: Int64? { results["memory"]?.objectValue?["heapUsedBytes"]?.intValue }
  public var path: String? { results["path"]?.stringValue }
}

/// What the harness makes of one line an implementation wrote.
public enum AdapterLine: Sendable, Hashable {
  case event(AdapterEvent)
  case ack(AdapterAck)

  /// The line checked against ``AdapterProtocolFormat/event``, and an ack against the ack of
  /// `op` (the operation it answers): the typed line, or every problem with its JSON path.
  /// `source` names the line in problems ("implementation for producer, stdout line 12").
  /// The lines of the hot path (`send` and the callbacks), recognised without the general
  /// checker when they are plainly well formed: exactly the declared members, strings well
  /// within their bounds (UTF-8 bytes bound the scalars the declaration counts). What this
  /// accepts, the declaration accepts; anything else is left to the checker (nil), which
  /// alone says what is wrong.
  static func common(_ o: [String: JSONValue]) -> Self? {
    guard case .string(let name)? = o["event"], case .string(let worker)? = o["worker"],
      (1...256).contains(worker.utf8.count)
    else { return nil }
    // A value nested deeper than a line may carry it goes to the checker, which names it.
    if name == "send" {
      guard o.count == 3, let message = o["message"], message.nesting <= JSONText.maxValueNesting else { return nil }
      return .event(.send(worker: worker, message: message))
    }
    guard o.count == 4, let kind = CallbackEvent(rawValue: name), let value = o[kind.member],
      value.nesting <= JSONText.maxValueNesting
    else { return nil }
    switch o["streamId"] {
    case .null?: return .event(.callback(kind, worker: worker, streamId: nil, value: value))
    case .string(let id)? where (1...1024).contains(id.utf8.count):
      return .event(.callback(kind, worker: worker, streamId: id, value: value))
    default: return nil
    }
  }

  public static func decode(_ line: JSONValue, answering op: String, source: String) -> Result<Self, AdapterLineError> {
    if case .object(let o) = line, let common = common(o) { return .success(common) }
    return checked(line, answering: op, source: source)
  }

  /// ``decode(_:answering:source:)`` by the general checker alone.
  static func checked(_ line: JSONValue, answering op: String, source: String) -> Result<Self, AdapterLineError> {
    let checker = FormatChecker(file: source)
    let members = line.objectValue
    let shape: Shape
    if members?["event"] != .string("ack") {
      shape = AdapterProtocolFormat.event
    } else if let error = members?["error"], error != .null {
      shape = AdapterProtocolFormat.failedAck(for: op)
    } else {
      shape = AdapterProtocolFormat.ack(for: op)
    }
    guard case .object(let o)? = checker.check(line, shape, "$"), !checker.hasProblems else {
      return .failure(AdapterLineError(problems: checker.finalProblems))
    }
    let worker = o["worker"]?.stringValue ?? ""
    switch o["event"]?.stringValue ?? "" {
    case "ack":
      var results = o
      for key in ["event", "id", "nextTimerMs", "error"] { results[key] = nil }
      let error = o["error"].flatMap { $0 == .null ? nil : $0 }
      return .success(
        .ack(
          AdapterAck(
            id: Int(o["id"]?.intValue ?? 0), nextTimerMs: o["nextTimerMs"]?.doubleValue, error: error,
            results: results)))
    case "send": return .success(.event(.send(worker: worker, message: o["message"] ?? .null)))
    case "handler":
      return .success(
        .event(
          .handler(
            worker: worker, method: o["method"]?.stringValue ?? "", streamId: o["streamId"]?.stringValue ?? "",
            args: o["args"] ?? .null)))
    case "credit": return .success(.event(.credit(worker: worker, streamId: o["streamId"]?.stringValue ?? "")))
    case "log":
      return .success(.event(.log(worker: o["worker"]?.stringValue, message: o["message"]?.stringValue ?? "")))
    case let name:
      let kind = CallbackEvent(rawValue: name) ?? .error
      return .success(
        .event(
          .callback(kind, worker: worker, streamId: o["streamId"]?.stringValue, value: o[kind.member] ?? .null)))
    }
  }
}
