public import KenshoProtocol
public import KenshoScenario

/// The settings of `configure`.
public struct AdapterConfiguration: Sendable, Hashable {
  public var workers: [String]
  public var streamTimeoutMs: Double
  public var sweepIntervalMs: Double
  public var seed: Int64
  public var creditWindow: Int?
  /// The buses' clock; `.real` only with the `real_time` capability.
  public var time: Time
  public var relay: Relay?

  /// The clock a process's buses run on.
  public enum Time: String, Sendable, Hashable {
    /// A manual clock at 0, moved by `advance` (the default).
    case virtual
    /// The system's monotonic clock; events are written whenever they happen.
    case real
  }

  /// A relay the buses join (the `relay` capability).
  public struct Relay: Sendable, Hashable {
    public var url: String
    public var token: String?
    public var connectTimeoutMs: Double?
    public init(url: String, token: String? = nil, connectTimeoutMs: Double? = nil) {
      self.url = url
      self.token = token
      self.connectTimeoutMs = connectTimeoutMs
    }
  }

  public init(
    workers: [String], streamTimeoutMs: Double, sweepIntervalMs: Double, seed: Int64, creditWindow: Int? = nil,
    time: Time = .virtual, relay: Relay? = nil
  ) {
    self.time = time
    self.workers = workers
    self.streamTimeoutMs = streamTimeoutMs
    self.sweepIntervalMs = sweepIntervalMs
    self.seed = seed
    self.creditWindow = creditWindow
    self.relay = relay
  }
}

/// The settings of `call`.
public struct AdapterCall: Sendable, Hashable {
  public var target: String
  public var method: String
  public var args: JSONValue
  public var timeoutMs: Double?
  public var creditWindow: Int?
  public var traceId: String?
  /// Callback names ("onChunk", "onEnd", "onError") that throw after reporting.
  public var throwIn: [String]

  public init(
    target: String, method: String, args: JSONValue, timeoutMs: Double? = nil, creditWindow: Int? = nil,
    traceId: String? = nil, throwIn: [String] = []
  ) {
    self.target = target
    self.method = method
    self.args = args
    self.timeoutMs = timeoutMs
    self.creditWindow = creditWindow
    self.traceId = traceId
    self.throwIn = throwIn
  }
}

/// One operation of `kensho-adapter/1` (harness → implementation), as declared in
/// ``AdapterProtocolFormat/operations``.
public enum AdapterOperation: Sendable, Hashable {
  case hello
  case configure(AdapterConfiguration)
  case register(worker: String, method: String, throws: SerializedError?)
  case call(worker: String, AdapterCall)
  case cancel(worker: String, streamId: String, reason: JSONValue)
  case chunk(worker: String, streamId: String, data: JSONValue)
  case chunks(worker: String, streamId: String, data: [JSONValue])
  case end(worker: String, streamId: String, summary: JSONValue)
  case error(worker: String, streamId: String, error: SerializedError)
  case deliver(worker: String, messages: [JSONValue])
  case peerDown(worker: String, peer: String)
  case advance(worker: String?, toMs: Double)
  case stats(worker: String)
  case memory(worker: String?)
  case heapSnapshot(path: String)
  case dispose(worker: String)
  case shutdown

  /// Its `op`.
  public var name: String {
    switch self {
    case .hello: "hello"
    case .configure: "configure"
    case .register: "register"
    case .call: "call"
    case .cancel: "cancel"
    case .chunk: "chunk"
    case .chunks: "chunks"
    case .end: "end"
    case .error: "error"
    case .deliver: "deliver"
    case .peerDown: "peer_down"
    case .advance: "advance"
    case .stats: "stats"
    case .memory: "memory"
    case .heapSnapshot: "heap_snapshot"
    case .dispose: "dispose"
    case .shutdown: "shutdown"
    }
  }

  /// The worker it concerns, if any.
  public var worker: String? {
    switch self {
    case .hello, .configure, .heapSnapshot, .shutdown: nil
    case .register(let w, _, _), .call(let w, _), .cancel(let w, _, _), .chunk(let w, _, _), .chunks(let w, _, _),
      .end(let w, _, _), .error(let w, _, _), .deliver(let w, _), .peerDown(let w, _), .stats(let w),
      .dispose(let w):
      w
    case .advance(let w, _), .memory(let w): w
    }
  }

  /// The line of `.deliver(worker:messages:)` for `messages`, as `JSONText.serialize` writes
  /// its `json(id:)`, written from the messages themselves (the harness's hot path).
  public static func writeDeliver(id: Int, worker: String, messages: [KenshoMessage], into out: inout [UInt8])
    throws(JSONText.ParseError)
  {
    out.append(contentsOf: #"{"id":"#.utf8)
    try JSONText.append(.int(Int64(id)), to: &out)
    out.append(contentsOf: #","messages":["#.utf8)
    for (i, message) in messages.enumerated() {
      if i > 0 { out.append(UInt8(ascii: ",")) }
      try KenshoCodec.write(message, into: &out)
    }
    out.append(contentsOf: #"],"op":"deliver","worker":"#.utf8)
    JSONText.append(string: worker, to: &out)
    out.append(UInt8(ascii: "}"))
  }

  /// Its line, without the newline: a JSON object with `op`, `id` and its members.
  public func json(id: Int) -> JSONValue {
    var o: [String: JSONValue] = ["op": .string(name), "id": .int(Int64(id))]
    if let worker { o["worker"] = .string(worker) }
    switch self {
    case .hello: o["protocol"] = .string(AdapterProtocolFormat.version)
    case .configure(let c):
      o["workers"] = .array(c.workers.map { .string($0) })
      o["streamTimeoutMs"] = .double(c.streamTimeoutMs)
      o["sweepIntervalMs"] = .double(c.sweepIntervalMs)
      o["seed"] = .int(c.seed)
      if let w = c.creditWindow { o["creditWindow"] = .int(Int64(w)) }
      // Absent is virtual: an adapter without real_time never sees the member.
      if c.time == .real { o["time"] = .string(c.time.rawValue) }
      if let r = c.relay {
        var relay: [String: JSONValue] = ["url": .string(r.url)]
        if let t = r.token { relay["token"] = .string(t) }
        if let t = r.connectTimeoutMs { relay["connectTimeoutMs"] = .double(t) }
        o["relay"] = .object(relay)
      }
    case .register(_, let method, let error):
      o["method"] = .string(method)
      if let error { o["throws"] = KenshoCodec.json(error) }
    case .call(_, let c):
      o["target"] = .string(c.target)
      o["method"] = .string(c.method)
      o["args"] = c.args
      o["throwIn"] = .array(c.throwIn.map { .string($0) })
      if let t = c.timeoutMs { o["timeoutMs"] = .double(t) }
      if let w = c.creditWindow { o["creditWindow"] = .int(Int64(w)) }
      if let t = c.traceId { o["traceId"] = .string(t) }
    case .cancel(_, let streamId, let reason):
      o["streamId"] = .string(streamId)
      o["reason"] = reason
    case .chunk(_, let streamId, let data):
      o["streamId"] = .string(streamId)
      o["data"] = data
    case .chunks(_, let streamId, let data):
      o["streamId"] = .string(streamId)
      o["data"] = .array(data)
    case .end(_, let streamId, let summary):
      o["streamId"] = .string(streamId)
      o["summary"] = summary
    case .error(_, let streamId, let error):
      o["streamId"] = .string(streamId)
      o["error"] = KenshoCodec.json(error)
    case .deliver(_, let messages): o["messages"] = .array(messages)
    case .peerDown(_, let peer): o["peer"] = .string(peer)
    case .advance(_, let toMs): o["toMs"] = .double(toMs)
    case .heapSnapshot(let path): o["path"] = .string(path)
    case .stats, .memory, .dispose, .shutdown: break
    }
    return .object(o)
  }

  /// The operation a line holds, checked against ``AdapterProtocolFormat/operation``: its id
  /// and the operation, or every problem found, each with its JSON path.
  public static func decode(_ line: JSONValue, source: String) -> Result<(id: Int, operation: Self), AdapterLineError> {
    let checker = FormatChecker(file: source)
    guard case .object(let o)? = checker.check(line, AdapterProtocolFormat.operation, "$"), !checker.hasProblems
    else { return .failure(AdapterLineError(problems: checker.finalProblems)) }
    // Checked: every required member is there with its type.
    let id = Int(o["id"]?.intValue ?? 0)
    let worker = o["worker"]?.stringValue ?? ""
    let streamId = o["streamId"]?.stringValue ?? ""
    func error(_ key: String) -> SerializedError? {
      o[key].flatMap { try? KenshoCodec.serializedError($0, path: "$.\(key)") }
    }
    let operation: Self
    switch o["op"]?.stringValue ?? "" {
    case "hello": operation = .hello
    case "configure":
      let relay = o["relay"]?.objectValue.map { r in
        AdapterConfiguration.Relay(
          url: r["url"]?.stringValue ?? "", token: r["token"]?.stringValue,
          connectTimeoutMs: r["connectTimeoutMs"]?.doubleValue)
      }
      operation = .configure(
        AdapterConfiguration(
          workers: (o["workers"]?.arrayValue ?? []).compactMap(\.stringValue),
          streamTimeoutMs: o["streamTimeoutMs"]?.doubleValue ?? 0,
          sweepIntervalMs: o["sweepIntervalMs"]?.doubleValue ?? 0,
          seed: o["seed"]?.intValue ?? 0, creditWindow: o["creditWindow"]?.intValue.map { Int($0) },
          time: o["time"]?.stringValue.flatMap(AdapterConfiguration.Time.init(rawValue:)) ?? .virtual, relay: relay))
    case "register":
      operation = .register(worker: worker, method: o["method"]?.stringValue ?? "", throws: error("throws"))
    case "call":
      operation = .call(
        worker: worker,
        AdapterCall(
          target: o["target"]?.stringValue ?? "", method: o["method"]?.stringValue ?? "", args: o["args"] ?? .null,
          timeoutMs: o["timeoutMs"]?.doubleValue, creditWindow: o["creditWindow"]?.intValue.map { Int($0) },
          traceId: o["traceId"]?.stringValue, throwIn: (o["throwIn"]?.arrayValue ?? []).compactMap(\.stringValue)))
    case "cancel": operation = .cancel(worker: worker, streamId: streamId, reason: o["reason"] ?? .null)
    case "chunk": operation = .chunk(worker: worker, streamId: streamId, data: o["data"] ?? .null)
    case "chunks": operation = .chunks(worker: worker, streamId: streamId, data: o["data"]?.arrayValue ?? [])
    case "end": operation = .end(worker: worker, streamId: streamId, summary: o["summary"] ?? .null)
    case "error":
      operation = .error(worker: worker, streamId: streamId, error: error("error") ?? SerializedError(message: ""))
    case "deliver": operation = .deliver(worker: worker, messages: o["messages"]?.arrayValue ?? [])
    case "peer_down": operation = .peerDown(worker: worker, peer: o["peer"]?.stringValue ?? "")
    case "advance": operation = .advance(worker: o["worker"]?.stringValue, toMs: o["toMs"]?.doubleValue ?? 0)
    case "stats": operation = .stats(worker: worker)
    case "memory": operation = .memory(worker: o["worker"]?.stringValue)
    case "heap_snapshot": operation = .heapSnapshot(path: o["path"]?.stringValue ?? "")
    case "dispose": operation = .dispose(worker: worker)
    default: operation = .shutdown
    }
    return .success((id, operation))
  }
}

/// A line that breaks the adapter protocol: every problem, each with its JSON path, what was
/// expected and what was found.
public struct AdapterLineError: Error, Sendable, CustomStringConvertible {
  public var problems: [ScenarioProblem]

  public init(problems: [ScenarioProblem]) {
    self.problems = problems
  }

  /// The first problem, on one line: `SOURCE: $.path: expected X, found Y`, and how many more.
  public var description: String {
    guard let first = problems.first else { return "a line that breaks \(AdapterProtocolFormat.version)" }
    return first.description + (problems.count > 1 ? " (and \(problems.count - 1) more problems)" : "")
  }
}
