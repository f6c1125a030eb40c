import KenshoProtocol
public import KenshoScenario

/// The adapter protocol `kensho-adapter/1`, declared once: every line the harness writes (an
/// operation) and every line an implementation writes (an event, or the ack of an operation),
/// with their members, types and ranges. The harness checks every line an adapter writes
/// against it (``AdapterLineDecoder``), the reference adapter every operation it reads, and
/// ``AdapterProtocolSchema`` writes the JSON Schema from it; docs/ADAPTER-PROTOCOL.md lists the
/// same members (a test keeps them in step).
public enum AdapterProtocolFormat {
  /// The protocol version both sides name in `hello`.
  public static let version = "kensho-adapter/1"

  // MARK: Values

  /// The largest operation id: every id is an integer a double holds exactly (JavaScript).
  public static let maxId = 9_007_199_254_740_991
  /// The latest timer deadline an ack may name, in ms of scenario time: its nanoseconds fit an
  /// Int64 (about 285 years).
  public static let maxTimerMs = 9_000_000_000_000.0
  /// The largest count or byte figure an adapter may report (1 PiB).
  public static let maxCount = 1 << 50

  static let id = Field(
    "id", .integer(min: 0, max: maxId), required: true, "The operation's id; its ack carries the same.")
  static let worker = Shape.string(StringShape(minLength: 1, maxLength: 256))
  static let workerField = Field("worker", worker, required: true, "The worker (a hosted bus) the line concerns.")
  static let streamId = Field(
    "streamId", .string(StringShape(minLength: 1, maxLength: 1024)), required: true, "The stream's id.")
  static func time(_ what: String = "a time in ms") -> Shape {
    .number(min: 0, max: maxTimerMs, what: what)
  }
  static let count = Shape.integer(min: 0, max: maxCount)
  static let anyValue = Shape.any(what: "a JSON value")
  /// The scenario format's error {name, message, code?, stack?} (KSP-5.2).
  static let serializedError = ScenarioFormat.serializedError

  // MARK: Operations (harness → implementation)

  /// The operations, by name, in the order the documentation lists them.
  public static let operations: [(name: String, fields: [Field], doc: String)] = [
    (
      "hello", [Field("protocol", .constant(version), required: true, "The protocol the harness speaks.")],
      "The handshake, the first operation of every process."
    ),
    (
      "configure",
      [
        Field(
          "workers", .array(ArrayShape(worker, minItems: 1, noun: "worker")), required: true,
          "The workers this process hosts: one bus each."),
        Field("streamTimeoutMs", time(), required: true, "The buses' idle stream timeout (KSP-6.1)."),
        Field("sweepIntervalMs", time(), required: true, "The buses' sweep interval (KSP-6.1)."),
        Field("seed", .integer(min: Int(Int64.min), max: Int(Int64.max)), required: true, "The scenario's seed."),
        Field(
          "creditWindow", .integer(min: 1, max: maxCount),
          "The buses' default credit window (KSP-FC), when the scenario sets one."),
        Field(
          "time", .oneOf(["virtual", "real"]),
          "The buses' clock: \"virtual\" (absent: the default), moved by `advance`; or, with the real_time "
            + "capability, \"real\": the system's monotonic clock, events written whenever they happen (Real time)."),
        Field(
          "relay",
          .object(
            ObjectShape(
              doc: "A relay the buses join instead of talking through the harness.", what: "a relay {url, token?}",
              [
                Field("url", .text, required: true, "ws://HOST:PORT/"),
                Field("token", .text, "The token to present (KSP-11.5)."),
                Field("connectTimeoutMs", time(), "How long to wait for every connection."),
              ])), "With the relay capability: the buses join this relay (Relay mode)."),
      ],
      "Creates a bus per worker, on a virtual clock at 0 (or the system clock, with time \"real\")."
    ),
    (
      "register",
      [
        workerField, Field("method", .text, required: true, "The stream method to register."),
        Field("throws", serializedError, "The handler throws this error (KSP-2.5)."),
      ],
      "registerStreamMethod(method, handler)."
    ),
    (
      "call",
      [
        workerField, Field("target", worker, required: true, "The producer's worker."),
        Field("method", .text, required: true, "The stream method."),
        Field("args", anyValue, required: true, "The call's arguments."),
        Field("timeoutMs", time(), "The stream's own idle timeout (KSP-6.2)."),
        Field("creditWindow", .integer(min: 1, max: maxCount), "The stream's credit window (KSP-FC)."),
        Field("traceId", .text, "The trace id the stream request carries (KSP-1.4)."),
        Field(
          "throwIn", .array(ArrayShape(.oneOf(["onChunk", "onEnd", "onError"]), maxItems: 3, noun: "callback")),
          required: true, "The callbacks that throw after reporting (KSP-4.2, KSP-5.4)."),
      ],
      "callAgentStream(target, method, args, callbacks)."
    ),
    (
      "cancel",
      [workerField, streamId, Field("reason", anyValue, required: true, "The cancel's reason.")],
      "cancelStream(streamId, reason)."
    ),
    (
      "chunk", [workerField, streamId, Field("data", anyValue, required: true, "The chunk's data.")],
      "The kept stream's chunk(data)."
    ),
    (
      "chunks",
      [
        workerField, streamId,
        Field("data", .array(ArrayShape(anyValue, noun: "chunk")), required: true, "The chunks' data."),
      ],
      "chunk(data) for each item in order, stopping at the first refusal."
    ),
    (
      "end", [workerField, streamId, Field("summary", anyValue, required: true, "The end's summary.")],
      "The kept stream's end(summary)."
    ),
    (
      "error", [workerField, streamId, Field("error", serializedError, required: true, "The error.")],
      "The kept stream's error(error)."
    ),
    (
      "deliver",
      [
        workerField,
        Field(
          "messages", .array(ArrayShape(anyValue, noun: "message")), required: true,
          "The messages, in order."),
      ],
      "Hands each message to the worker's bus."
    ),
    ("peer_down", [workerField, Field("peer", worker, required: true, "The worker gone.")], "KSP-8.1."),
    (
      "advance",
      [
        Field("worker", worker, "A worker of the process (informative)."),
        Field("toMs", time(), required: true, "The virtual time to move to."),
      ],
      "Moves the virtual clock, running due timers in order."
    ),
    ("stats", [workerField], "Reads the worker's bus counters."),
    (
      "memory", [Field("worker", worker, "A worker of the process (informative).")],
      "With the memory capability: collects garbage, then measures the heap."
    ),
    (
      "heap_snapshot", [Field("path", .text, required: true, "Where to write it.")],
      "Optional: writes a heap snapshot of the process."
    ),
    ("dispose", [workerField], "Disposes the worker's bus (KSP-10.1)."),
    ("shutdown", [], "Acks, then exits."),
  ]

  /// One operation line.
  public static let operation = Shape.variant(
    VariantShape(
      tag: "op", doc: "An operation: one line the harness writes to the implementation's stdin.",
      what: "an operation",
      operations.map { op in
        .when(
          op.name,
          shape: .object(
            ObjectShape(
              doc: op.doc, what: "an operation \"\(op.name)\"",
              [id, Field("op", .constant(op.name), required: true, "The operation.")] + op.fields)))
      }))

  // MARK: Acks

  /// The results an ack carries besides `event`, `id`, `nextTimerMs` and `error`, by operation.
  public static let ackResults: [String: [Field]] = {
    let emitResult = Field(
      "result", .oneOf(EmitResult.allCases.map(\.rawValue)), required: true,
      "ok, or why the emitter refused: closed, cancelled, no_credit (flow control).")
    return [
      "hello": [
        Field("protocol", .text, required: true, "The protocol the implementation speaks."),
        Field(
          "implementation",
          .object(
            ObjectShape(
              doc: "Who the implementation is; any other member is kept for the report.",
              what: "an implementation {name, version}",
              [
                Field("name", .string(StringShape(minLength: 1, maxLength: 256)), required: true, "Its name."),
                Field("version", .string(StringShape(maxLength: 256)), required: true, "Its version."),
              ], open: true)), required: true, "Who answers."),
        Field(
          "capabilities",
          .array(ArrayShape(.string(StringShape(minLength: 1, maxLength: 64)), maxItems: 64, noun: "capability")),
          required: true, "What it supports: " + capabilities.joined(separator: ", ") + "."),
      ],
      "call": [streamId.with(doc: "The id of the stream the call opened.")],
      "cancel": [Field("result", .bool, required: true, "What cancelStream returned.")],
      "chunk": [emitResult], "end": [emitResult], "error": [emitResult],
      "chunks": [
        emitResult,
        Field("sent", count, required: true, "How many chunks of the batch were sent before any refusal."),
      ],
      "stats": [
        Field(
          "stats",
          .object(
            ObjectShape(
              doc: "The bus's counters.", what: "stats {activeStreams, emitters, ...}",
              [
                Field("activeStreams", count, required: true, "Entries in activeStreams."),
                Field("emitters", count, required: true, "Emitters still kept."),
                Field("dropped", .map(values: count, what: "counts by reason"), "Messages dropped, by reason."),
                Field("callbackFailures", count, "Callbacks that threw."),
                Field("received", count, "Messages received."), Field("sent", count, "Messages sent."),
              ], open: true)), required: true, "The worker's bus counters.")
      ],
      "memory": [
        Field(
          "memory",
          .object(
            ObjectShape(
              doc: "The process's memory; any other member is kept.", what: "memory {heapUsedBytes}",
              [Field("heapUsedBytes", count, required: true, "The heap in use after a collection, bytes.")],
              open: true)), required: true, "The process's memory.")
      ],
      "heap_snapshot": [Field("path", .text, required: true, "The snapshot's path as written.")],
    ]
  }()

  /// Every capability the harness knows.
  public static let capabilities = [
    "virtual_time", "real_time", "stats", "cancel", "seq", "peer_down", "flow_control", "memory", "relay",
  ]

  static let ackBase: [Field] = [
    id,
    Field("event", .constant("ack"), required: true, "An ack."),
    Field(
      "nextTimerMs", .orNull(time("a time in ms")),
      "The deadline of the process's next timer in virtual time; null or absent: none."),
  ]

  static let ackError = Field(
    "error", .any(what: "a reason"), "Present (and not null) when the operation failed: why.")

  /// The ack of `op` when it succeeds: what it must carry. An ack with an `error` only needs
  /// the base members (``failedAck(for:)``).
  public static func ack(for op: String) -> Shape { acks[op]?.succeeded ?? unknownAck }

  /// An ack that reports a failure: its results are optional.
  public static func failedAck(for op: String) -> Shape { acks[op]?.failed ?? unknownAck }

  /// Both shapes of every operation's ack, made once (a shape is checked for every line).
  static let acks: [String: (succeeded: Shape, failed: Shape)] = {
    var out: [String: (Shape, Shape)] = [:]
    for op in operations.map(\.name) {
      let results = ackResults[op] ?? []
      let succeeded = Shape.object(
        ObjectShape(doc: "The ack of \"\(op)\".", what: "an ack of \"\(op)\"", ackBase + [ackError] + results))
      let failed = Shape.object(
        ObjectShape(
          doc: "A failed ack of \"\(op)\".", what: "an ack of \"\(op)\"",
          ackBase + [ackError] + results.map { $0.with(required: false) }))
      out[op] = (succeeded, failed)
    }
    return out
  }()

  static let unknownAck = Shape.object(ObjectShape(doc: "An ack.", what: "an ack", ackBase + [ackError]))

  // MARK: Events (implementation → harness)

  static let callbackStreamId = Field(
    "streamId", .orNull(.string(StringShape(minLength: 1, maxLength: 1024))), required: true,
    "The stream's id; null only if the callback ran before callAgentStream returned it.")

  /// The events, by name, in the order the documentation lists them (the ack last).
  public static let events: [(name: String, fields: [Field], doc: String)] = [
    (
      "send",
      [workerField, Field("message", .any(what: "a KenshoMessage"), required: true, "What the bus sent (KSP-1.1).")],
      "A KenshoMessage the worker's bus sent."
    ),
    (
      "handler",
      [
        workerField, Field("method", .text, required: true, "The method."), streamId,
        Field("args", anyValue, required: true, "The call's arguments."),
      ],
      "A stream handler was called."
    ),
    ("chunk", [workerField, callbackStreamId, Field("data", anyValue, required: true, "The data.")], "onChunk ran."),
    ("end", [workerField, callbackStreamId, Field("summary", anyValue, required: true, "The summary.")], "onEnd ran."),
    (
      "error", [workerField, callbackStreamId, Field("error", anyValue, required: true, "The error received.")],
      "onError ran."
    ),
    ("credit", [workerField, streamId], "Credit arrived for an emitter that had none (flow control)."),
    (
      "log",
      [
        Field("worker", worker, "The worker it concerns, if any."),
        Field("message", .text, required: true, "Free text, written to the adapter log."),
      ],
      "A diagnostic line."
    ),
  ]

  /// One line an implementation writes.
  public static let event = Shape.variant(
    VariantShape(
      tag: "event", doc: "An event or an ack: one line an implementation writes to its stdout.",
      what: "an event",
      events.map { e in
        .when(
          e.name,
          shape: .object(
            ObjectShape(
              doc: e.doc, what: "an event \"\(e.name)\"",
              [Field("event", .constant(e.name), required: true, "The event.")] + e.fields)))
      } + [
        .when(
          "ack",
          shape: .object(
            ObjectShape(
              doc: "The answer to operation id: the results of the operation (by operation, see $defs).",
              what: "an ack",
              ackBase + [ackError] + mergedAckResults, open: false)))
      ]))

  /// Every ack result member, optional, for the schema of a line read without knowing its op.
  static let mergedAckResults: [Field] = {
    var seen: Set<String> = []
    var out: [Field] = []
    for op in operations.map(\.name) {
      for f in ackResults[op] ?? [] where seen.insert(f.name).inserted {
        // `result` is a boolean for cancel and a word for emitters; `path`/`stats` one shape.
        out.append(Field(f.name, f.name == "result" ? .any(what: "a result") : f.shape, f.doc))
      }
    }
    return out
  }()
}

/// What an emitter's operation came to.
public enum EmitResult: String, Sendable, CaseIterable {
  case ok, closed, cancelled
  case noCredit = "no_credit"
}

extension Field {
  func with(required: Bool) -> Field { Field(name, shape, required: required, default: defaultValue, doc) }
  func with(doc: String) -> Field { Field(name, shape, required: required, default: defaultValue, doc) }
}
