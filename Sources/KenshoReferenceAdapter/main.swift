// The reference bus behind the adapter protocol (kensho-adapter/1, docs/ADAPTER-PROTOCOL.md),
// so that the harness's adapter path is tested against the reference itself:
//
//   kensho-bench Scenarios/ --impl .build/debug/kensho-ref-adapter
import Foundation
import KenshoAdapterProtocol
import KenshoBus
import KenshoMemory
import KenshoProtocol
import Synchronization

/// Events written before the next ack. The adapter handles one operation at a time on the
/// main thread. In real time, timers fire on other threads: what they cause outside an
/// operation is written at once; the lock keeps lines whole and in order.
final class Output: Sendable {
  private struct State {
    /// Lines waiting, each with its newline.
    var waiting: [UInt8] = []
    var inOperation = false
    var realTime = false
  }

  private let state = Mutex(State())

  func emit(_ event: AdapterEvent) {
    write { out throws(JSONText.ParseError) in try event.write(into: &out) }
  }

  func write(_ line: JSONValue) {
    write { out throws(JSONText.ParseError) in try JSONText.append(line, to: &out) }
  }

  /// Writes one line with `body`; a line it cannot write (a number that is not finite) is left out.
  func write(_ body: (inout [UInt8]) throws(JSONText.ParseError) -> Void) {
    var line: [UInt8] = []
    line.reserveCapacity(256)
    do {
      try body(&line)
    } catch {
      return
    }
    line.append(0x0A)
    state.withLock { s in
      s.waiting.append(contentsOf: line)
      if s.realTime && !s.inOperation { Self.flush(&s) }
    }
  }

  /// Real time: from now on, events outside an operation go out as they happen.
  func startRealTime() { state.withLock { $0.realTime = true } }

  func beginOperation() { state.withLock { $0.inOperation = true } }

  /// Writes what is waiting, then ends the operation.
  func flush() {
    state.withLock { s in
      Self.flush(&s)
      s.inOperation = false
    }
  }

  private static func flush(_ s: inout State) {
    guard !s.waiting.isEmpty else { return }
    FileHandle.standardOutput.write(Data(s.waiting))
    s.waiting.removeAll(keepingCapacity: true)
  }
}

/// Forwards a bus's messages to the harness as `send` events.
final class AdapterTransport: Transport {
  let worker: String
  let output: Output
  init(worker: String, output: Output) {
    self.worker = worker
    self.output = output
  }
  func start(receiver: any TransportReceiver) {}
  func send(_ message: KenshoMessage) {
    output.write { out throws(JSONText.ParseError) in
      try AdapterEvent.writeSend(worker: worker, message: message, into: &out)
    }
  }
  func close() {}
}

/// A stream's id, for callbacks created before it exists.
final class IdBox: Sendable {
  let id = Mutex<String?>(nil)
}

let output = Output()
/// Virtual time's clock, moved by `advance`; in real time, the buses run on the system clock.
let clock = ManualClock()
var buses: [String: MessageBus] = [:]
let emitters = Mutex<[String: StreamEmitter]>([:])

/// Drops an emitter that has finished, was cancelled or lost its bus.
func forgetIfDone(_ emitter: StreamEmitter, _ streamId: String) {
  if !emitter.isActive { emitters.withLock { _ = $0.removeValue(forKey: streamId) } }
}
var configuration = BusConfiguration()

func milliseconds(_ v: Double?) -> Duration? { v.map(Nanos.duration(ms:)) }

/// Runs one operation; returns the ack's results.
@MainActor func handle(_ op: AdapterOperation) throws -> [String: JSONValue] {
  let worker = op.worker ?? ""
  func bus() throws -> MessageBus {
    guard let bus = buses[worker] else { throw SerializedError(message: "no worker \(worker) here") }
    return bus
  }
  /// Runs an emitter operation on `streamId`'s kept emitter: ok, or why it refused.
  func emitting(_ streamId: String, sent: Int? = nil, _ action: (StreamEmitter, inout Int) throws(EmitterError) -> Void)
    -> [String: JSONValue]
  {
    var count = 0
    func ack(_ result: EmitResult) -> [String: JSONValue] {
      var out: [String: JSONValue] = ["result": .string(result.rawValue)]
      if sent != nil { out["sent"] = .int(Int64(count)) }
      return out
    }
    guard let emitter = emitters.withLock({ $0[streamId] }) else { return ack(.closed) }
    defer { forgetIfDone(emitter, streamId) }
    do {
      try action(emitter, &count)
      return ack(.ok)
    } catch .noCredit {
      emitter.onCredit { output.emit(.credit(worker: worker, streamId: streamId)) }
      return ack(.noCredit)
    } catch .cancelled {
      return ack(.cancelled)
    } catch {
      return ack(.closed)
    }
  }
  switch op {
  case .hello:
    return [
      "protocol": .string(AdapterProtocolFormat.version),
      "implementation": ["name": "kensho-reference", "version": "0.1.0", "language": "swift"],
      "capabilities": ["virtual_time", "real_time", "stats", "cancel", "seq", "peer_down", "flow_control", "memory"],
    ]
  case .configure(let c):
    if let t = milliseconds(c.streamTimeoutMs) { configuration.streamTimeout = t }
    if let s = milliseconds(c.sweepIntervalMs) { configuration.sweepInterval = s }
    if c.relay != nil { throw SerializedError(message: "no relay capability here") }
    if c.time == .real { output.startRealTime() }
    let busClock: any BusClock = c.time == .real ? SystemClock.shared : clock
    for name in c.workers {
      buses[name] = try MessageBus(
        name: name, transport: AdapterTransport(worker: name, output: output), clock: busClock,
        configuration: configuration)
    }
    return [:]
  case .register(_, let method, let throwsError):
    try bus().registerStreamMethod(method) { args, stream in
      // Kept while it is active, and no longer: the adapter must not leak what the bus frees.
      let id = stream.streamId
      emitters.withLock { $0[id] = stream }
      stream.onCancel { _ in _ = emitters.withLock { $0.removeValue(forKey: id) } }
      output.emit(.handler(worker: worker, method: method, streamId: stream.streamId, args: args))
      if let throwsError {
        _ = emitters.withLock { $0.removeValue(forKey: id) }
        throw throwsError
      }
    }
    return [:]
  case .call(_, let call):
    let throwIn = Set(call.throwIn)
    let streamBox = IdBox()
    let report: @Sendable (CallbackEvent, JSONValue) -> Void = { kind, value in
      output.emit(.callback(kind, worker: worker, streamId: streamBox.id.withLock { $0 }, value: value))
    }
    struct Thrown: Error {}
    var callbacks = StreamCallbacks(
      onChunk: { data in
        report(.chunk, data)
        if throwIn.contains("onChunk") { throw Thrown() }
      },
      onEnd: { summary in
        report(.end, summary)
        if throwIn.contains("onEnd") { throw Thrown() }
      },
      onError: { error in
        report(.error, KenshoCodec.json(error))
        if throwIn.contains("onError") { throw Thrown() }
      },
      timeout: milliseconds(call.timeoutMs))
    callbacks.creditWindow = call.creditWindow
    let id = try bus().callStream(
      call.target, method: call.method, args: call.args, callbacks: callbacks, traceId: call.traceId,
      opened: { id in streamBox.id.withLock { $0 = id } })
    return ["streamId": .string(id)]
  case .cancel(_, let streamId, let reason):
    return ["result": .bool(try bus().cancelStream(streamId, reason: reason))]
  case .chunk(_, let streamId, let data):
    return emitting(streamId) { emitter, _ throws(EmitterError) in try emitter.chunk(data) }
  case .end(_, let streamId, let summary):
    return emitting(streamId) { emitter, _ throws(EmitterError) in try emitter.end(summary) }
  case .error(_, let streamId, let error):
    return emitting(streamId) { emitter, _ throws(EmitterError) in try emitter.error(error) }
  case .chunks(_, let streamId, let data):
    return emitting(streamId, sent: 0) { emitter, sent throws(EmitterError) in
      for item in data {
        try emitter.chunk(item)
        sent += 1
      }
    }
  case .deliver(_, let messages):
    let target = try bus()
    for raw in messages {
      switch KenshoCodec.message(from: raw) {
      case .success(let message): target.receive(message)
      case .failure: break  // the bus would drop it too (KSP-1.2)
      }
    }
    return [:]
  case .peerDown(_, let peer):
    try bus().peerDown(peer)
    return [:]
  case .advance(_, let toMs):
    let target = Nanos.from(ms: toMs)
    while clock.runNext(notAfter: target) {}
    clock.advance(by: .nanoseconds(max(0, target - clock.nanoseconds())))
    return [:]
  case .memory:
    // jemalloc's bytes in use: exact, so there is nothing to collect first.
    guard let allocated = Jemalloc.allocated() else { throw SerializedError(message: "no jemalloc statistics") }
    return ["memory": ["heapUsedBytes": .int(Int64(clamping: allocated))]]
  case .heapSnapshot:
    throw SerializedError(message: "no heap snapshots here: the reference writes a jemalloc profile in process")
  case .stats:
    let s = try bus().stats
    var dropped: [String: JSONValue] = [:]
    for (reason, n) in s.dropped { dropped[reason.description] = .int(Int64(n)) }
    return [
      "stats": [
        "activeStreams": .int(Int64(s.activeStreams)), "emitters": .int(Int64(s.emitters)), "dropped": .object(dropped),
        "callbackFailures": .int(Int64(s.callbackFailures)), "received": .int(Int64(s.received)),
        "sent": .int(Int64(s.sent)),
      ]
    ]
  case .dispose:
    try bus().dispose()
    emitters.withLock { $0 = $0.filter { $0.value.isActive } }
    return [:]
  case .shutdown:
    return [:]
  }
}

/// A `deliver` read by the hot path (``HotLine/deliver(_:)``): every message already valid as
/// received, so each goes to the bus as the general path would send it.
@MainActor func deliver(id: Int, worker: String, messages: [KenshoMessage]) {
  output.beginOperation()
  var ack = AdapterAck(id: id)
  if let bus = buses[worker] {
    for message in messages { bus.receive(message) }
  } else {
    ack.error = .string("\(SerializedError(message: "no worker \(worker) here"))")
  }
  ack.nextTimerMs = clock.nextDeadline.map { Double($0) / 1e6 }
  output.write(ack.json)
  output.flush()
}

/// One operation line: handled, acknowledged; true when it was `shutdown`.
@MainActor func operation(_ line: [UInt8], number lineNumber: Int) -> Bool {
  if let (id, worker, messages) = HotLine.deliver(line) {
    deliver(id: id, worker: worker, messages: messages)
    return false
  }
  guard case .success(let json) = KenshoCodec.parse(Data(line)) else {
    FileHandle.standardError.write(
      Data("line \(lineNumber) is not JSON: \(String(decoding: line.prefix(80), as: UTF8.self))\n".utf8))
    return false
  }
  // Every operation is checked against the protocol's declaration; one that breaks it gets an
  // ack with an error naming the member, when it has an id to answer.
  let id = json.objectValue?["id"]?.intValue.map { Int(clamping: $0) } ?? 0
  var ack = AdapterAck(id: id)
  var isShutdown = false
  output.beginOperation()
  switch AdapterOperation.decode(json, source: "stdin line \(lineNumber)") {
  case .failure(let error):
    ack.error = .string("\(error)")
  case .success(let (_, op)):
    isShutdown = op == .shutdown
    do {
      ack.results = try handle(op)
    } catch {
      ack.error = .string("\(error)")
    }
  }
  ack.nextTimerMs = clock.nextDeadline.map { Double($0) / 1e6 }
  output.write(ack.json)
  output.flush()
  return isShutdown
}

// Operations come as bytes, split at newlines (no String made of a line, no copy of it).
var lineNumber = 0
var splitter = LineSplitter(maxLine: 1 << 30)
let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
reading: while true {
  let n = input.baseAddress.map { read(0, $0, input.count) } ?? 0
  if n < 0 && errno == EINTR { continue }
  var lines: [[UInt8]] = []
  if n <= 0 {
    if let last = splitter.finish() { lines.append(last) }
  } else {
    do {
      try splitter.feed(UnsafeRawBufferPointer(rebasing: input[..<n])) { lines.append($0) }
    } catch {
      FileHandle.standardError.write(Data("a line longer than 1 GiB (\(error.length) bytes): stopping\n".utf8))
      break reading
    }
  }
  for var line in lines {
    lineNumber += 1
    if line.last == 0x0D { line.removeLast() }
    if operation(line, number: lineNumber) { break reading }
  }
  if n <= 0 { break }
}
input.deallocate()
