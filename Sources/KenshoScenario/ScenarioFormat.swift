import KenshoProtocol

/// The scenario format `kensho-scenario/1`, declared once: every member, its type and range,
/// which are required, which go with which `kind` or `check`, defaults and descriptions. The
/// loader checks files against it (``FormatChecker``) before building the model from what it
/// accepted, and ``ScenarioSchema`` writes the JSON Schema from it.
///
/// Rules a schema cannot state stay in the loader's code, at the path they concern: agent and
/// rule names that must exist, `min` ≤ `max`, unique worker names, the sums of
/// ``ScenarioLimits``, samples before the deadline, the rules a check decides
/// (``ScenarioFormat/codeRules``).
public enum ScenarioFormat {
  // MARK: Strings

  public static let workerName = StringFormat(
    name: "workerName", pattern: "^[A-Za-z][A-Za-z0-9_-]{0,63}$", what: "a worker name ^[A-Za-z][A-Za-z0-9_-]{0,63}$",
    doc: "A KSP worker name.", accepts: { Envelope.isValidWorkerName($0) })
  public static let kspRuleId = StringFormat(
    name: "kspRuleId", pattern: "^KSP-[0-9]+\\.[0-9]+$", what: "a KSP rule id such as \"KSP-3.2\"",
    doc: "A KSP/1 rule id such as \"KSP-3.2\" (the loader also checks that it exists).",
    accepts: { KSPRule.named($0) != nil })
  public static let ruleId = StringFormat(
    name: "ruleId", pattern: "^(KSP-[0-9]+\\.[0-9]+|PERF)$", what: "a KSP rule id such as \"KSP-3.2\"",
    doc: "A KSP/1 rule id such as \"KSP-3.2\", or \"PERF\" for a performance bound.",
    accepts: { $0 == "PERF" || KSPRule.named($0) != nil })

  // MARK: Numbers

  /// A time in ms of scenario time, from `min` to ``ScenarioLimits/maxTimeMs``.
  static func time(min: Double = 0) -> Shape {
    .number(min: min, max: ScenarioLimits.maxTimeMs, what: "a time in ms")
  }
  static let bytes = Shape.number(min: 0, max: ScenarioLimits.maxMagnitude, what: "a number")
  static let perStreamCount = Shape.integer(min: 0, max: ScenarioLimits.maxChunks)

  // MARK: Time

  public static let timeSettings = Shape.named(
    "time",
    .object(
      ObjectShape(
        doc: "How time runs in the scenario. Times are at most 1000000000 ms (about 11.6 days).",
        [
          Field(
            "mode", .oneOf(TimeSettings.Mode.allCases.map(\.rawValue)), default: .string(TimeSettings().mode.rawValue),
            "\"virtual\": a manual clock, run as a discrete-event simulation (idle minutes take no wall time). "
              + "\"real\": the monotonic clock."),
          Field("streamTimeoutMs", time(), "The bus's idle stream timeout in ms (KSP-6.1). Absent: 300000."),
          Field(
            "sweepIntervalMs", time(min: 1), "The bus's sweep interval of activeStreams in ms (KSP-6.1). Absent: 60000."
          ),
          Field(
            "deadlineMs", time(min: 1), default: .double(TimeSettings().deadlineMs),
            "The scenario fails when it has not finished after this much scenario time, in ms."),
          Field(
            "sampleEveryMs", time(min: 1), default: .double(TimeSettings().sampleEveryMs),
            "Interval between samples of activeStreams and memory, in ms of scenario time. At least deadlineMs / "
              + "\(FormatChecker.format(ScenarioLimits.maxSamples)) (at most ten million samples)."),
        ])))

  // MARK: Network

  public static let networkSettings = Shape.named(
    "network",
    .object(
      ObjectShape(
        doc: "Which network carries the messages.",
        [
          Field(
            "kind", .oneOf(NetworkSettings.Kind.allCases.map(\.rawValue)), default: "harness",
            "\"harness\": the harness's in-process network (faults apply). \"relay\": a WebSocket relay (KSP-11): "
              + "agents are real clients in real time, on an embedded relay unless --relay-url or --relay-cmd names "
              + "another; needs time.mode \"real\"; its faults may drop, duplicate or delay, not forge."),
          Field(
            "token", .string(StringShape(minLength: 1, maxLength: 256)),
            "The token relay clients present; the embedded relay (and --relay-cmd's) then requires it (KSP-11.5)."),
          Field(
            "probe", .bool, default: true,
            "Whether the harness probes the relay's own rules (KSP-11) after the workload."),
        ])))

  // MARK: Agents

  public static let serializedError = Shape.named(
    "serializedError",
    .object(
      ObjectShape(
        doc: "A serialized error {name, message, code?, stack?}.", what: "an error {name, message, code?}",
        [
          Field("name", .text, required: true, "The error's name, e.g. \"Error\"."),
          Field("message", .text, required: true, "The error's message."),
          Field("code", .text, "An optional error code, e.g. \"STREAM_ERROR\"."),
          Field("stack", .text, "An optional stack trace."),
        ])))

  static func kind(_ doc: String) -> Field { Field("kind", .text, required: true, doc) }

  public static let chunkContent = Shape.named(
    "chunkContent",
    .variant(
      VariantShape(
        tag: "kind",
        doc: "The data of each chunk, generated deterministically from the seed and the chunk's index.",
        what: "an object with \"kind\"",
        [
          .when(
            "sequence",
            shape: .object(ObjectShape(doc: "The numbers 0, 1, 2, ...", [kind("The chunk's index.")]))),
          .when(
            "json",
            shape: .object(
              ObjectShape(
                doc: "The same JSON value in every chunk.",
                [
                  kind("The same value every time."),
                  Field(
                    "value", .any(what: "the JSON value of every chunk"), required: true,
                    "The JSON value of every chunk (any JSON, null included)."),
                ]))),
          .when(
            "values",
            shape: .object(
              ObjectShape(
                doc: "These values in turn, repeating.",
                [
                  kind("These values in turn."),
                  Field(
                    "values", .array(ArrayShape(.any(what: "a value"), minItems: 1, noun: "value")), required: true,
                    "The chunk values, used in turn; at least one."),
                ]))),
          .when(
            "text",
            shape: .object(
              ObjectShape(
                doc: "{\"i\": index, \"text\": ...} with `size` characters of text.",
                [
                  kind("An object with the index and `size` characters of text."),
                  Field(
                    "size", .integer(min: 0, max: ScenarioLimits.maxContentSize), required: true,
                    "Characters of text per chunk (at most 64 MiB)."),
                ]))),
          .when(
            "binary",
            shape: .object(
              ObjectShape(
                doc: "`size` bytes as base64, the first 6 bytes the chunk's index.",
                [
                  kind("`size` bytes as base64."),
                  Field(
                    "size", .integer(min: 6, max: ScenarioLimits.maxContentSize), required: true,
                    "Bytes per chunk, at least 6 (the index) and at most 64 MiB."),
                ]))),
        ])))

  public static let finish = Shape.named(
    "finish",
    .variant(
      VariantShape(
        tag: "kind", doc: "How a producer finishes its stream after its chunks.", what: "an object with \"kind\"",
        [
          .when(
            "end",
            shape: .object(
              ObjectShape(
                doc: "stream.end(summary).",
                [
                  kind("End the stream normally."),
                  Field(
                    "summary", .any(what: "a summary"),
                    "The summary passed to stream.end (any JSON). Absent: {\"chunks\": N}, N the chunks emitted."),
                ]))),
          .when(
            "error", "throw",
            shape: .object(
              ObjectShape(
                doc: "stream.error(error), or a handler that throws error (KSP-2.5).",
                [
                  kind("\"error\": the producer calls stream.error; \"throw\": the handler throws (KSP-2.5)."),
                  Field("error", serializedError, required: true, "The error sent or thrown."),
                ]))),
          .when(
            "hang",
            shape: .object(
              ObjectShape(
                doc: "Never finishes; the idle timeout must reclaim the stream (KSP-6.2).", [kind("Never finish.")]))),
          .when(
            "crash",
            shape: .object(
              ObjectShape(
                doc: "The producer's agent vanishes mid-stream (KSP-8).",
                [
                  kind("The producer's agent vanishes."),
                  Field(
                    "announced", .bool, default: .bool(false),
                    "true: the transport reports the producer gone (PRODUCER_GONE, KSP-8.1); false: it goes silently "
                      + "and the idle timeout reclaims its streams."),
                ]))),
        ])))

  public static let behaviour = Shape.named(
    "behaviour",
    .object(
      ObjectShape(
        doc: "What a stream method does for each stream: emit chunks, then finish.",
        [
          Field(
            "chunks", .integer(min: 0, max: ScenarioLimits.maxChunks), required: true,
            "How many chunks to emit before finishing, at most \(ScenarioLimits.maxChunks) (and at most "
              + "\(ScenarioLimits.maxTotalChunks) in the whole workload: streams × chunks)."),
          Field("content", chunkContent, default: ["kind": "sequence"], "The data of each chunk."),
          Field(
            "intervalMs", time(), default: .double(ProducerBehaviour(chunks: 0).intervalMs),
            "Scenario time between chunks, in ms; 0 emits as fast as the bus takes them."),
          Field("finish", finish, default: ["kind": "end"], "How the stream finishes after its chunks."),
          Field(
            "emitAfterFinish", .bool, default: .bool(false),
            "After finishing, the handler tries to emit once more; the emitter must refuse and send nothing (KSP-4.3)."),
        ])))

  /// `name-(count-1)` must itself be a worker name: the longer the count, the shorter the name.
  static var nameLengthByCount: [SchemaJSON] {
    var rules: [SchemaJSON] = []
    var digits = 1
    var low = 2
    while low <= ScenarioLimits.maxWorkers {
      let high = Swift.min(ScenarioLimits.maxWorkers, low == 2 ? 10 : low * 10 - 10)
      rules.append(
        .object([
          ("$comment", "`name-(count-1)` must itself be a worker name of at most 64 characters."),
          (
            "if",
            .object([
              ("required", .array(["count"])),
              ("properties", .object([("count", .object([("minimum", .int(low)), ("maximum", .int(high))]))])),
            ])
          ),
          ("then", .object([("properties", .object([("name", .object([("maxLength", .int(63 - digits))]))]))])),
        ]))
      digits += 1
      low = high + 1
    }
    return rules
  }

  public static let agent = Shape.named(
    "agent",
    .object(
      ObjectShape(
        doc: "An agent, or with `count` > 1 a group of workers named `name-0` ... `name-(count-1)`.",
        [
          Field(
            "name", .string(workerName), required: true,
            "The worker name, or the group's base name when `count` > 1; unique across agents."),
          Field(
            "count", .integer(min: 1, max: ScenarioLimits.maxWorkers), default: 1,
            "How many workers the agent stands for. All agents together stand for at most "
              + "\(ScenarioLimits.maxWorkers) workers."),
          Field(
            "methods", .map(values: behaviour, what: "an object of stream methods"),
            "The stream methods the agent serves, by method name."),
          Field(
            "processingMs", time(), default: .double(AgentSpec(name: "").processingMs),
            "A slow consumer: scenario time each message to this agent takes to process; others wait in its inbox."),
        ], schemaRules: nameLengthByCount)))

  // MARK: Workload

  public static let workloadGroup = Shape.named(
    "workloadGroup",
    .object(
      ObjectShape(
        doc: "Streams that consumers open to producers, assigned round-robin over (consumer, producer) pairs. Give "
          + "at most one of `concurrency` (closed model) and `ratePerSecond` (open model).",
        [
          Field(
            "consumers", .string(workerName), required: true,
            "The name of the agent (or group) in `agents` that opens the streams."),
          Field(
            "producers", .string(workerName), required: true,
            "The name of the agent (or group) in `agents` that serves them."),
          Field(
            "method", .text, required: true,
            "The stream method to call; one the producers do not serve yields METHOD_NOT_FOUND."),
          Field("args", .any(what: "the args"), "The args of each stream_request (any JSON). Absent: null."),
          Field(
            "streams", .integer(min: 1, max: ScenarioLimits.maxStreams), default: 1,
            "How many streams in all. At most \(ScenarioLimits.maxStreams), in one group and in all groups together."),
          Field(
            "concurrency", .integer(min: 1, max: ScenarioLimits.maxStreams),
            "Closed model: at most this many streams open at once. Absent (and no ratePerSecond): all at once."),
          Field(
            "ratePerSecond", .number(min: 0.001, max: ScenarioLimits.maxRatePerSecond, what: "a rate per second"),
            "Open model: start streams at this rate per second of scenario time, whatever is open."),
          Field("startMs", time(), default: 0, "Scenario time at which the group starts, in ms."),
          Field(
            "timeoutMs", time(), "callbacks.timeout of each stream in ms (KSP-6.1); absent: the bus's idle timeout."),
          Field(
            "cancelAfterChunks", .integer(min: 1, max: ScenarioLimits.maxChunks),
            "The consumer cancels each stream after receiving this many chunks (KSP-7.1); at least 1 (a cancel is sent from onChunk)."
          ),
          Field(
            "throwIn", .array(ArrayShape(.oneOf(CallbackKind.allCases.map(\.rawValue)), noun: "callback")),
            "Consumer callbacks that throw (KSP-4.2, KSP-5.4)."),
          Field(
            "creditWindow", .integer(min: 1, max: ScenarioLimits.maxCreditWindow),
            "Flow control (KSP-FC extension): the credit window each stream offers."),
          Field(
            "traced", .bool, default: .bool(false),
            "Open each stream with a traceId that all its messages must carry (KSP-1.4)."),
        ],
        atMostOne: [
          ObjectShape.Exclusive(
            ["concurrency", "ratePerSecond"],
            "either \"concurrency\" (closed model) or \"ratePerSecond\" (open model)")
        ])))

  // MARK: Expectations

  /// A check: its name, what it takes besides `check` and `rule`, and what it means.
  public struct Check: Sendable {
    public var name: String
    public var fields: [Field]
    public var atLeastOne: [[String]] = []
    public var doc: String
  }

  static let ruleField = Field("rule", .string(ruleId), "The rule the expectation stands for, instead of its default.")

  /// Every check, in the order the format document lists them.
  public static let checks: [Check] = [
    Check(
      name: "ordered_delivery", fields: [],
      doc: "KSP-3.2: on streams the network kept in order, chunks arrive once, in order, unchanged, all of them."),
    Check(
      name: "seq_delivery", fields: [],
      doc: "KSP-3.4: on streams whose messages were dropped, repeated or delayed, chunks carry metadata.seq 0, 1, 2… "
        + "and onChunk sees a prefix of what was emitted."),
    Check(
      name: "end_after_chunks", fields: [],
      doc: "KSP-4.4: stream_end carries metadata.seq = chunks sent, and onEnd runs only after every chunk."),
    Check(
      name: "activity_refresh", fields: [],
      doc: "KSP-3.3: only messages accepted from the stream's producer refresh its activity."),
    Check(
      name: "chunks_addressed", fields: [],
      doc: "KSP-3.1: each chunk the emitter accepted goes out as one stream_chunk to the consumer."),
    Check(
      name: "malformed_dropped", fields: [],
      doc: "KSP-1.2: forged malformed messages reach no callback and disturb no stream."),
    Check(name: "misaddressed_ignored", fields: [], doc: "KSP-1.3: messages for another worker are ignored."),
    Check(
      name: "cancel_stops_producer", fields: [],
      doc: "KSP-7.2: once the consumer's cancel arrives, the producer's emitter refuses."),
    Check(
      name: "foreign_cancel_ignored", fields: [],
      doc: "KSP-7.3: a cancel from anyone but the consumer is ignored."),
    Check(
      name: "exactly_one_terminal", fields: [],
      doc: "KSP-4.2 (or 5.4): one terminal callback per stream, nothing after it."),
    Check(
      name: "outcome", fields: [],
      doc: "Each stream (or at least `fraction` of them) finishes this way. Default rule: KSP-4.1 for end; for "
        + "error by code METHOD_NOT_FOUND KSP-2.3, STREAM_TIMEOUT KSP-6.2, STREAM_CANCELLED KSP-7.1, PRODUCER_GONE "
        + "KSP-8.1, BUS_DISPOSED KSP-10.1, otherwise KSP-5.2."),
    Check(name: "summary_preserved", fields: [], doc: "KSP-4.1: onEnd receives the producer's summary."),
    Check(
      name: "active_streams_empty", fields: [],
      doc: "KSP-9.1 (or 8.2, 10.1): no activeStreams entry or producer emitter is left on any bus."),
    Check(
      name: "timeout_window", fields: [], doc: "KSP-6.2: timeouts fire after the timeout and within one sweep of it."),
    Check(
      name: "handler_runs",
      fields: [Field("perStream", perStreamCount, default: 1, "Expected handler runs per stream.")],
      doc: "KSP-2.4 (or 2.2): the producer's handler ran exactly `perStream` times per stream."),
    Check(name: "wire_valid", fields: [], doc: "KSP-1.1: every message on the wire is a well-formed envelope."),
    Check(
      name: "stream_requests", fields: [],
      doc: "KSP-2.1: one stream_request per stream, payload {method, args} as called."),
    Check(
      name: "trace_propagated", fields: [],
      doc: "KSP-1.4: every message of a `traced` stream carries its traceId."),
    Check(
      name: "emitter_closed", fields: [],
      doc: "KSP-4.3: nothing from the producer after its end or error; a further emit is refused."),
    Check(
      name: "payload_sha256", fields: [],
      doc: "KSP-3.2: the SHA-256 of the bytes received equals that of the bytes sent."),
    Check(
      name: "inactive_chunks_dropped", fields: [],
      doc: "KSP-3.5: chunks for an ended stream are dropped without a callback."),
    Check(
      name: "memory_returns",
      fields: [
        Field(
          "maxBytes", .integer(min: 0, max: Int(ScenarioLimits.maxMagnitude)), required: true,
          "Allowed bytes above the baseline.")
      ],
      doc: "KSP-9.2: memory after the run is back within maxBytes of its baseline."),
    Check(
      name: "no_leak",
      fields: [
        Field("maxBytesPerStream", bytes, "Largest allowed growth per completed stream, bytes."),
        Field("maxBytesPerChunk", bytes, "Largest allowed growth per delivered chunk, bytes."),
      ], atLeastOne: [["maxBytesPerStream", "maxBytesPerChunk"]],
      doc: "KSP-9.2: memory fitted (least squares over the samples) against streams completed and chunks "
        + "delivered grows by at most these bytes per stream and per chunk."),
    Check(
      name: "peak_memory",
      fields: [
        Field(
          "maxBytes", .integer(min: 0, max: Int(ScenarioLimits.maxMagnitude)), required: true,
          "Allowed bytes above the baseline.")
      ],
      doc: "KSP-9.3: memory during the run stays within maxBytes above the baseline."),
    Check(
      name: "disconnect_recovery", fields: [],
      doc: "KSP-8.2 (or 6.2): each stream open across a `disconnect` action of its consumer or producer ends "
        + "exactly once: onEnd, or reclaimed with STREAM_TIMEOUT or PRODUCER_GONE; untested without a disconnection."),
    Check(
      name: "reconnect",
      fields: [
        Field(
          "withinMs", time(min: 1), default: 10_000,
          "Longest time from the cut to the worker's next relay connection, ms.")
      ],
      doc: "PERF: each worker whose relay connection a `disconnect` action cut is back within `withinMs`, and the "
        + "streams through it that began after it came back end with onEnd."),
    relayCheck(
      "relay_fanout",
      "KSP-11.1: each frame reaches every other open connection unchanged and of its kind, never its sender."),
    relayCheck("relay_order", "KSP-11.2: frames from one sender reach each receiver in the order sent."),
    relayCheck("relay_ping", "KSP-11.3: a text ping is answered pong to its sender only and not forwarded."),
    relayCheck("relay_server_info", "KSP-11.4: the relay's first frame on each connection is one server_info."),
    relayCheck(
      "relay_auth",
      "KSP-11.5: without a valid token the upgrade gets 401; no frame of an unadmitted client is forwarded."),
    relayCheck(
      "relay_slow_receiver",
      "KSP-11.6: a stalled receiver delays no one; what it cannot take is dropped or it is closed, never buffered without bound."
    ),
  ]

  /// A KSP-11 check: read from the harness's probe of the relay.
  static func relayCheck(_ name: String, _ rule: String) -> Check {
    Check(
      name: name, fields: [],
      doc: rule + " Read from the harness's probe of the relay; untested without network kind relay.")
  }

  /// The names of every check, as scenario files write them.
  public static var checkNames: [String] { checks.map(\.name) }

  static let outcomeTerminal = VariantShape(
    tag: "terminal", doc: checks.first { $0.name == "outcome" }?.doc ?? "", what: "an object with \"terminal\"",
    [
      .when(
        "end",
        shape: .object(
          ObjectShape(
            doc: "Streams end with onEnd.",
            [
              Field("check", .text, required: true, "The outcome check."),
              Field("terminal", .text, required: true, "How streams finish: onEnd (\"end\") or onError (\"error\")."),
              Field(
                "fraction", .number(min: 0, max: 1, what: "a number"), default: 1,
                "The share of streams that must match, 0 to 1 (rounded up to whole streams, at least one)."),
              ruleField,
            ]))),
      .when(
        "error",
        shape: .object(
          ObjectShape(
            doc: "Streams end with onError, with this code, name and message when given.",
            [
              Field("check", .text, required: true, "The outcome check."),
              Field("terminal", .text, required: true, "How streams finish: onEnd (\"end\") or onError (\"error\")."),
              Field("code", .text, "The error code onError must receive."),
              Field("name", .text, "The error name onError must receive."),
              Field("message", .text, "The error message onError must receive."),
              Field(
                "fraction", .number(min: 0, max: 1, what: "a number"), default: 1,
                "The share of streams that must match, 0 to 1 (rounded up to whole streams, at least one)."),
              ruleField,
            ]))),
    ])

  static let checkExpectation = Shape.named(
    "checkExpectation",
    .variant(
      VariantShape(
        tag: "check", doc: "A check tied to a KSP rule.", what: "an object with \"check\" or \"metric\"",
        checks.map { check in
          if check.name == "outcome" { return .when("outcome", shape: .variant(outcomeTerminal)) }
          return .when(
            check.name,
            shape: .object(
              ObjectShape(
                doc: check.doc,
                [Field("check", .text, required: true, "The check's name.")] + check.fields + [ruleField],
                atLeastOne: check.atLeastOne)))
        })))

  static let metricExpectation = Shape.named(
    "metricExpectation",
    .object(
      ObjectShape(
        doc: "A metric stays within bounds; give \"min\", \"max\" or both. Default rule: KSP-9.2 for retained_bytes, "
          + "KSP-9.3 for peak_bytes, otherwise PERF.",
        [
          Field(
            "metric", .oneOf(Metric.allCases.map(\.rawValue)), required: true,
            "The metric: latency_*_us in µs; chunks_per_second, bytes_per_second; retained_bytes, peak_bytes in "
              + "bytes; chunks_delivered, streams_completed, max_inbox_depth as counts."),
          Field(
            "min", .number(min: -ScenarioLimits.maxMagnitude, max: ScenarioLimits.maxMagnitude, what: "a number"),
            "The metric must be at least this."),
          Field(
            "max", .number(min: -ScenarioLimits.maxMagnitude, max: ScenarioLimits.maxMagnitude, what: "a number"),
            "The metric must be at most this."),
          Field("rule", .string(ruleId), "The rule the bound stands for, instead of its default."),
        ], atLeastOne: [["min", "max"]])))

  public static let expectation = Shape.named(
    "expectation",
    .either(
      member: "metric", present: metricExpectation, absent: checkExpectation,
      what: "an object with \"check\" or \"metric\""))

  // MARK: Faults

  static let faultFilters: [Field] = [
    Field(
      "types", .array(ArrayShape(.oneOf(MessageType.allCases.map(\.rawValue)), noun: "message type")),
      "Message types it applies to; all when absent."),
    Field("nth", perStreamCount, "Only the message with this index (from 0) among each stream's messages of `types`."),
    Field(
      "probability", .number(min: 0, max: 1, what: "a number"), default: 1,
      "Chance that a matching message is hit."),
    Field(
      "between", .array(ArrayShape(.text, minItems: 2, maxItems: 2, noun: "agent name", what: "two agent names")),
      "Two agent names: only messages between them, either way (a partition)."),
    Field("fromMs", time(), "Start of the window, ms of scenario time."),
    Field("untilMs", time(), "End of the window (the partition heals), ms of scenario time."),
  ]

  static func faultCase(_ doc: String, _ fields: [Field]) -> Shape {
    .object(ObjectShape(doc: doc, [kind("The fault's kind.")] + fields + faultFilters))
  }

  static let distribution = Field("distribution", .text, "How delays are drawn (default constant).")
  static let forgeField = Field("forge", .text, required: true, "What the harness forges.")
  static let forgeMs = Field(
    "ms", time(), default: 0, "Delay after the stream_request (after the stream_end for chunk_after_end), ms.")

  public static let fault = Shape.named(
    "fault",
    .variant(
      VariantShape(
        tag: "kind",
        doc: "A fault of the harness network, applied to the messages matching all its filters; seeded by `seed`.",
        what: "an object with \"kind\"",
        [
          .when("drop", shape: faultCase("The message is lost.", [])),
          .when("duplicate", shape: faultCase("The message arrives twice.", [])),
          .when(
            "delay",
            shape: .variant(
              VariantShape(
                tag: "distribution", default: "constant",
                doc: "The message arrives late (differing delays reorder messages).", what: "an object with \"kind\"",
                [
                  .when(
                    "constant",
                    shape: faultCase(
                      "Every matching message is delayed by `ms`.",
                      [distribution, Field("ms", time(), default: 0, "The delay, ms.")])),
                  .when(
                    "uniform",
                    shape: faultCase(
                      "Delays drawn uniformly from `minMs` to `maxMs`.",
                      [
                        distribution, Field("minMs", time(), default: 0, "The smallest delay, ms."),
                        Field("maxMs", time(), "The largest delay, ms (at least minMs). Absent: minMs."),
                      ])),
                  .when(
                    "exponential",
                    shape: faultCase(
                      "Delays drawn from an exponential distribution of mean `ms`.",
                      [distribution, Field("ms", time(), default: 0, "The mean delay, ms.")])),
                ]))),
          .when(
            "forge",
            shape: .variant(
              VariantShape(
                tag: "forge",
                doc: "The harness forges a message for each matching stream, `ms` after its stream_request (after its "
                  + "stream_end for chunk_after_end).", what: "an object with \"forge\"",
                [
                  .when(
                    "cancel", "foreign_chunk",
                    shape: faultCase(
                      "cancel: a stream_cancel to the producer from agent `from`, not the consumer (KSP-7.3); "
                        + "foreign_chunk: a chunk for the stream from agent `from`, not its producer (KSP-3.3).",
                      [
                        forgeField,
                        Field(
                          "from", .text, required: true,
                          "The agent (in `agents`) the forged message comes from."),
                        forgeMs,
                      ])),
                  .when(
                    "malformed_chunk", "misaddressed_chunk", "error_without_error", "chunk_after_end",
                    shape: faultCase(
                      "malformed_chunk: chunks breaking KSP-1.1 (KSP-1.2); misaddressed_chunk: a chunk addressed to "
                        + "another worker (KSP-1.3); error_without_error: a stream_error without error (KSP-5.3); "
                        + "chunk_after_end: a chunk after the end (KSP-3.5).", [forgeField, forgeMs])),
                ]))),
        ])))

  // MARK: The scenario

  public static let action = Shape.named(
    "action",
    .either(
      member: "disconnect",
      present: .object(
        ObjectShape(
          doc: "Cut the relay connections of an agent's workers at a set scenario time.",
          [
            Field("atMs", time(), default: 0, "When, in ms of scenario time."),
            Field(
              "disconnect", .text, required: true,
              "Close the relay connections of this agent's workers (network kind \"relay\", embedded relay); "
                + "their buses reconnect on their own, and `disconnect_recovery` and `reconnect` judge what follows."),
          ])),
      absent: .object(
        ObjectShape(
          doc: "Dispose an agent's buses at a set scenario time.",
          [
            Field("atMs", time(), default: 0, "When, in ms of scenario time."),
            Field("dispose", .text, required: true, "Dispose the buses of this agent (KSP-10.1)."),
          ])),
      what: "an object with \"dispose\" or \"disconnect\""))

  public static let scenario = Shape.object(
    ObjectShape(
      doc: "A declarative kensho-bench scenario: agents, what their stream methods do, the workload that calls "
        + "them, and what must hold afterwards. `kensho-bench validate` also checks what a schema cannot: names "
        + "of agents that must exist, unique worker names, rule ids that exist in KSP/1, the rules each check "
        + "decides, min ≤ max, and the sums of the limits.",
      [
        Field("$schema", .text, "The URL or path of this JSON Schema, for editors; ignored by kensho-bench."),
        Field(
          "format", .constant(Scenario.format), required: true,
          "The scenario format; this version reads only \"\(Scenario.format)\"."),
        Field(
          "name", .string(StringShape(minLength: 1, maxLength: 256)), required: true,
          "The scenario's name, used in reports; 1 to 256 characters."),
        Field("description", .text, "What the scenario exercises, for people."),
        Field(
          "seed", .integer(min: 0, max: Int(Int64.max)), default: 1,
          "Seed of every random choice (chunk data included); `--seed` overrides it."),
        Field("time", timeSettings, "How time runs. Absent: virtual time with KSP/1's default timeouts."),
        Field("network", networkSettings, "Which network carries the messages. Absent: the harness's own."),
        Field(
          "agents",
          .array(ArrayShape(agent, minItems: 1, maxItems: ScenarioLimits.maxWorkers, noun: "agent")),
          required: true, "The agents (workers) and the stream methods they serve; at least one."),
        Field(
          "workload",
          .array(ArrayShape(workloadGroup, minItems: 1, maxItems: ScenarioLimits.maxItems, noun: "workload group")),
          required: true, "Groups of streams that consumers open to producers."),
        Field(
          "expect",
          .array(ArrayShape(expectation, minItems: 1, maxItems: ScenarioLimits.maxItems, noun: "expectation")),
          required: true, "What must hold after the run: checks tied to KSP rules, and bounds on metrics."),
        Field(
          "rules", .array(ArrayShape(.string(kspRuleId), maxItems: ScenarioLimits.maxItems, noun: "rule id")),
          "KSP rule ids the scenario is about (informational; the rules reported come from `expect`)."),
        Field(
          "regression",
          .object(
            ObjectShape(
              doc: "How much worse than a baseline report each metric may get (a fraction: 0.25 is 25 % worse) before "
                + "`kensho-bench --baseline` reports a regression. Metrics not named use --max-regression.",
              Metric.allCases.map { metric in
                Field(
                  metric.rawValue, .number(min: 0, max: ScenarioLimits.maxRegression, what: "a fraction"),
                  "Allowed relative regression of \(metric.rawValue).")
              })),
          "How much worse than a baseline each metric may get before it counts as a regression."),
        Field(
          "faults", .array(ArrayShape(fault, maxItems: ScenarioLimits.maxFaults, noun: "fault")),
          "Faults the harness network injects, in order."),
        Field(
          "actions", .array(ArrayShape(action, maxItems: ScenarioLimits.maxItems, noun: "action")),
          "Things the harness does at set scenario times."),
      ]))

  /// The rules the loader checks in code, after the declaration: what a JSON Schema cannot say.
  /// The format document lists them; the invalid-scenario fixtures cover each.
  public static let codeRules = [
    "workload consumers and producers, fault `between` and `from`, and actions `dispose` and `disconnect` name agents in `agents`",
    "worker names are unique across agents, and `name-(count-1)` is a worker name",
    "rule ids exist in KSP/1, and an expectation's `rule` is one its check decides",
    "metric `min` ≤ `max`; a uniform delay's `maxMs` ≥ `minMs`",
    "`sampleEveryMs` ≥ `deadlineMs` / 10000000",
    "a relay network needs `time.mode` \"real\", and its faults are drops, copies or delays (no `forge`)",
    "a `disconnect` action needs network kind \"relay\"",
    "workers, streams and chunks summed over the scenario stay within the limits",
  ]
}
