/// The ranges the loader accepts, so that every value a scenario gives fits what the harness
/// computes with it (times in `Int64` nanoseconds, counts in `Int`, memory it can hold).
///
/// docs/SCENARIO-FORMAT.md ("Limits") and the JSON Schema state the same numbers.
public enum ScenarioLimits {
  /// The longest scenario time, in ms: 10^9 ms (about 11.6 days). In nanoseconds that is 10^15,
  /// so sums and multiples of times stay far inside `Int64` (9.2 × 10^18).
  public static let maxTimeMs: Double = 1_000_000_000
  /// The highest open-model rate, streams per second of scenario time (one every microsecond).
  public static let maxRatePerSecond: Double = 1_000_000
  /// Workers in all agents together (`count` summed over `agents`).
  public static let maxWorkers = 100_000
  /// Streams in one workload group, and in all groups together.
  public static let maxStreams = 10_000_000
  /// Chunks of one stream; also the bound of other per-stream counts (`cancelAfterChunks`,
  /// `nth`, `perStream`).
  public static let maxChunks = 1_000_000_000
  /// Chunks of the whole workload: streams × chunks, summed over the groups.
  public static let maxTotalChunks = 10_000_000_000
  /// Samples of a run that lasts until its deadline: `deadlineMs / sampleEveryMs`.
  public static let maxSamples: Double = 10_000_000
  /// Characters (text) or bytes (binary) of one chunk: 64 MiB.
  public static let maxContentSize = 64 << 20
  /// The credit window of flow control.
  public static let maxCreditWindow = 1 << 30
  /// Faults in `faults` (each message is tested against every one).
  public static let maxFaults = 1_000
  /// Items in `actions`, and in `expect`.
  public static let maxItems = 10_000
  /// The largest regression fraction (1000: a thousand times worse).
  public static let maxRegression: Double = 1_000
  /// The largest magnitude of a metric bound, and of a byte count in a memory check (10^18).
  public static let maxMagnitude: Double = 1e18
  /// The largest scenario file read: 32 MiB.
  public static let maxFileBytes = 32 << 20
  /// Problems listed per file; the rest are counted.
  public static let maxProblems = 100
}

/// What running a scenario on the reference bus costs, estimated before it runs.
public struct ScenarioFootprint: Sendable, Hashable, CustomStringConvertible {
  /// Workers in all agents.
  public var workers: Int
  /// Streams in all workload groups.
  public var streams: Int
  /// Streams open at once at most.
  public var openStreams: Int
  /// Chunks of the whole workload (streams × chunks).
  public var chunks: Int
  /// Messages that can wait at once in slow consumers' inboxes.
  public var inboxMessages: Int
  /// The estimated peak memory of the harness, in bytes.
  public var bytes: Int

  /// Figures measured on the in-process reference run (debug build, Linux x86-64), rounded up.
  enum Cost {
    static let base = 48 << 20
    static let perWorker = 1_600
    static let perRegistration = 256
    static let perStream = 400
    static let perOpenStream = 1_200
    static let perMessage = 400
  }

  public var description: String {
    "\(Self.bytesText(bytes)) (\(workers) workers, \(streams) streams, \(openStreams) open at once"
      + (inboxMessages > 0 ? ", \(inboxMessages) messages waiting in slow consumers' inboxes" : "") + ")"
  }

  /// `bytes` for people: "3.7 GB", "420 MB", "12 kB".
  public static func bytesText(_ bytes: Int) -> String {
    let b = Double(bytes)
    if b >= 1e9 { return "\(decimal(b / 1e9)) GB" }
    if b >= 1e6 { return "\(decimal(b / 1e6)) MB" }
    if b >= 1e3 { return "\(decimal(b / 1e3)) kB" }
    return "\(bytes) B"
  }

  private static func decimal(_ v: Double) -> String {
    let tenths = (v * 10).rounded()
    guard tenths < 1e15 else { return "\(v)" }
    let t = Int64(tenths)
    return t % 10 == 0 || t >= 1000 ? "\(t / 10)" : "\(t / 10).\(t % 10)"
  }
}

extension Scenario {
  /// What the scenario costs to run (see ``ScenarioFootprint``). Every figure saturates at
  /// `Int.max` rather than overflow, whatever the values.
  public var footprint: ScenarioFootprint {
    var workers = 0
    var registrations = 0
    var generatorBytes = 0
    for agent in agents {
      workers = workers.addingSaturated(agent.count)
      registrations = registrations.addingSaturated(agent.count.multipliedSaturated(agent.methods.count))
      for behaviour in agent.methods.values {
        generatorBytes = generatorBytes.addingSaturated(
          agent.count.multipliedSaturated(Self.generatorBytes(behaviour.content)))
      }
    }
    var streams = 0
    var open = 0
    var chunks = 0
    var inbox = 0
    var inboxBytes = 0
    var openGeneratorBytes = 0
    let slow = Set(agents.filter { $0.processingMs > 0 }.map(\.name))
    let byName = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    for group in workload {
      streams = streams.addingSaturated(group.streams)
      let groupOpen = Swift.min(group.concurrency ?? group.streams, group.streams)
      open = open.addingSaturated(groupOpen)
      let behaviours = byName[group.producers]?.methods[group.method]
      let perStream = behaviours?.chunks ?? 0
      chunks = chunks.addingSaturated(group.streams.multipliedSaturated(perStream))
      if let behaviours {
        openGeneratorBytes = openGeneratorBytes.addingSaturated(
          groupOpen.multipliedSaturated(Self.generatorBytes(behaviours.content)))
      }
      if slow.contains(group.consumers) {
        // Without flow control every chunk can wait; with it, about two windows a stream.
        let waiting =
          group.creditWindow.map { Swift.min(perStream, $0.multipliedSaturated(2).addingSaturated(16)) } ?? perStream
        let messages = (group.creditWindow == nil ? group.streams : groupOpen).multipliedSaturated(
          waiting.addingSaturated(2))
        inbox = inbox.addingSaturated(messages)
        let each = ScenarioFootprint.Cost.perMessage.addingSaturated(
          behaviours.map { Self.distinctChunkBytes($0.content) } ?? 0)
        inboxBytes = inboxBytes.addingSaturated(messages.multipliedSaturated(each))
      }
    }
    typealias Cost = ScenarioFootprint.Cost
    var bytes = Cost.base
    bytes = bytes.addingSaturated(workers.multipliedSaturated(Cost.perWorker))
    bytes = bytes.addingSaturated(registrations.multipliedSaturated(Cost.perRegistration))
    bytes = bytes.addingSaturated(generatorBytes)
    bytes = bytes.addingSaturated(streams.multipliedSaturated(Cost.perStream))
    bytes = bytes.addingSaturated(open.multipliedSaturated(Cost.perOpenStream))
    bytes = bytes.addingSaturated(openGeneratorBytes)
    bytes = bytes.addingSaturated(inboxBytes)
    return ScenarioFootprint(
      workers: workers, streams: streams, openStreams: open, chunks: chunks, inboxMessages: inbox, bytes: bytes)
  }

  /// Memory a ``ChunkGenerator`` holds for `content`.
  static func generatorBytes(_ content: ChunkContent) -> Int {
    switch content {
    case .text(let size): Swift.max(0, size)
    case .binary(let size): Swift.max(0, size).multipliedSaturated(7) / 3
    default: 0
    }
  }

  /// Memory one chunk holds of its own (text and JSON values share the generator's storage).
  static func distinctChunkBytes(_ content: ChunkContent) -> Int {
    if case .binary(let size) = content { return Swift.max(0, size).multipliedSaturated(4) / 3 + 16 }
    return 16
  }
}

extension Int {
  func addingSaturated(_ other: Int) -> Int {
    let (sum, overflow) = addingReportingOverflow(other)
    return overflow ? (other > 0 ? .max : .min) : sum
  }

  func multipliedSaturated(_ other: Int) -> Int {
    let (product, overflow) = multipliedReportingOverflow(by: other)
    return overflow ? ((self < 0) == (other < 0) ? .max : .min) : product
  }
}
