// The reference bus behind the adapter protocol (kensho-adapter/1, docs/ADAPTER-PROTOCOL.md),
// so that the harness's adapter path is tested against the reference itself:
//
//   kensho-bench Scenarios/ --impl .build/debug/kensho-ref-adapter
import Foundation
import KenshoBus
import KenshoMemory
import KenshoProtocol
import Synchronization

/// Events written before the next ack. The adapter handles one operation at a time on the
/// main thread; the lock only satisfies the compiler about the callbacks that write here.
final class Output: Sendable {
  private let lines = Mutex<[Data]>([])

  func emit(_ event: [String: JSONValue]) {
    guard let data = try? KenshoCodec.encode(.object(event)) else { return }
    lines.withLock { $0.append(data) }
  }

  func flush() {
    let pending = lines.withLock { l in
      defer { l = [] }
      return l
    }
    var all = Data()
    for line in pending {
      all.append(line)
      all.append(0x0A)
    }
    FileHandle.standardOutput.write(all)
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
    output.emit(["event": "send", "worker": .string(worker), "message": KenshoCodec.json(message)])
  }
  func close() {}
}

/// A stream's id, for callbacks created before it exists.
final class IdBox: Sendable {
  let id = Mutex<String?>(nil)
}

let output = Output()
let clock = ManualClock()
var buses: [String: MessageBus] = [:]
let emitters = Mutex<[String: StreamEmitter]>([:])

/// Drops an emitter that has finished, was cancelled or lost its bus.
func forgetIfDone(_ emitter: StreamEmitter, _ streamId: String) {
  if !emitter.isActive { emitters.withLock { _ = $0.removeValue(forKey: streamId) } }
}
var configuration = BusConfiguration()

func milliseconds(_ v: JSONValue?) -> Duration? { v?.doubleValue.map(Nanos.duration(ms:)) }

@MainActor func handle(_ op: [String: JSONValue]) throws -> [String: JSONValue] {
  let worker = op["worker"]?.stringValue ?? ""
  func bus() throws -> MessageBus {
    guard let bus = buses[worker] else { throw SerializedError(message: "no worker \(worker) here") }
    return bus
  }
  switch op["op"]?.stringValue {
  case "hello":
    return [
      "protocol": "kensho-adapter/1",
      "implementation": ["name": "kensho-reference", "version": "0.1.0", "language": "swift"],
      "capabilities": ["virtual_time", "stats", "cancel", "seq", "peer_down", "flow_control", "memory"],
    ]
  case "configure":
    if let t = milliseconds(op["streamTimeoutMs"]) { configuration.streamTimeout = t }
    if let s = milliseconds(op["sweepIntervalMs"]) { configuration.sweepInterval = s }
    for name in (op["workers"]?.arrayValue ?? []).compactMap(\.stringValue) {
      buses[name] = try MessageBus(
        name: name, transport: AdapterTransport(worker: name, output: output), clock: clock,
        configuration: configuration)
    }
    return [:]
  case "register":
    let method = op["method"]?.stringValue ?? ""
    let throwsError = op["throws"].flatMap { try? KenshoCodec.serializedError($0, path: "$.throws") }
    try bus().registerStreamMethod(method) { args, stream in
      // Kept while it is active, and no longer: the adapter must not leak what the bus frees.
      let id = stream.streamId
      emitters.withLock { $0[id] = stream }
      stream.onCancel { _ in _ = emitters.withLock { $0.removeValue(forKey: id) } }
      output.emit([
        "event": "handler", "worker": .string(worker), "method": .string(method), "streamId": .string(stream.streamId),
        "args": args,
      ])
      if let throwsError {
        _ = emitters.withLock { $0.removeValue(forKey: id) }
        throw throwsError
      }
    }
    return [:]
  case "call":
    let throwIn = Set((op["throwIn"]?.arrayValue ?? []).compactMap(\.stringValue))
    let streamBox = IdBox()
    let report: @Sendable (String, [String: JSONValue]) -> Void = { kind, fields in
      var event = fields
      event["event"] = .string(kind)
      event["worker"] = .string(worker)
      event["streamId"] = streamBox.id.withLock { $0 }.map { .string($0) } ?? .null
      output.emit(event)
    }
    struct Thrown: Error {}
    var callbacks = StreamCallbacks(
      onChunk: { data in
        report("chunk", ["data": data])
        if throwIn.contains("onChunk") { throw Thrown() }
      },
      onEnd: { summary in
        report("end", ["summary": summary])
        if throwIn.contains("onEnd") { throw Thrown() }
      },
      onError: { error in
        report("error", ["error": KenshoCodec.json(error)])
        if throwIn.contains("onError") { throw Thrown() }
      },
      timeout: milliseconds(op["timeoutMs"]))
    callbacks.creditWindow = op["creditWindow"]?.intValue.map { Int($0) }
    let id = try bus().callStream(
      op["target"]?.stringValue ?? "", method: op["method"]?.stringValue ?? "", args: op["args"] ?? .null,
      callbacks: callbacks, traceId: op["traceId"]?.stringValue, opened: { id in streamBox.id.withLock { $0 = id } })
    return ["streamId": .string(id)]
  case "cancel":
    return ["result": .bool(try bus().cancelStream(op["streamId"]?.stringValue ?? "", reason: op["reason"] ?? .null))]
  case "chunk", "end", "error":
    let streamId = op["streamId"]?.stringValue ?? ""
    guard let emitter = emitters.withLock({ $0[streamId] }) else { return ["result": "closed"] }
    defer { forgetIfDone(emitter, streamId) }
    do {
      switch op["op"]?.stringValue {
      case "chunk": try emitter.chunk(op["data"] ?? .null)
      case "end": try emitter.end(op["summary"] ?? .null)
      default:
        let error = op["error"].flatMap { try? KenshoCodec.serializedError($0, path: "$.error") }
        try emitter.error(error ?? SerializedError(message: ""))
      }
      return ["result": "ok"]
    } catch .noCredit {
      emitter.onCredit {
        output.emit(["event": "credit", "worker": .string(worker), "streamId": .string(streamId)])
      }
      return ["result": "no_credit"]
    } catch .cancelled {
      return ["result": "cancelled"]
    } catch {
      return ["result": "closed"]
    }
  case "deliver":
    let target = try bus()
    for raw in op["messages"]?.arrayValue ?? [op["message"] ?? .null] {
      switch KenshoCodec.message(from: raw) {
      case .success(let message): target.receive(message)
      case .failure: break  // the bus would drop it too (KSP-1.2)
      }
    }
    return [:]
  case "chunks":
    let streamId = op["streamId"]?.stringValue ?? ""
    guard let emitter = emitters.withLock({ $0[streamId] }) else { return ["result": "closed", "sent": 0] }
    defer { forgetIfDone(emitter, streamId) }
    var sent = 0
    do {
      for data in op["data"]?.arrayValue ?? [] {
        try emitter.chunk(data)
        sent += 1
      }
      return ["result": "ok", "sent": .int(Int64(sent))]
    } catch .noCredit {
      emitter.onCredit {
        output.emit(["event": "credit", "worker": .string(worker), "streamId": .string(streamId)])
      }
      return ["result": "no_credit", "sent": .int(Int64(sent))]
    } catch .cancelled {
      return ["result": "cancelled", "sent": .int(Int64(sent))]
    } catch {
      return ["result": "closed", "sent": .int(Int64(sent))]
    }
  case "peer_down":
    try bus().peerDown(op["peer"]?.stringValue ?? "")
    return [:]
  case "advance":
    let target = Nanos.from(ms: op["toMs"]?.doubleValue ?? 0)
    while clock.runNext(notAfter: target) {}
    clock.advance(by: .nanoseconds(max(0, target - clock.nanoseconds())))
    return [:]
  case "memory":
    // jemalloc's bytes in use: exact, so there is nothing to collect first.
    guard let allocated = Jemalloc.allocated() else { throw SerializedError(message: "no jemalloc statistics") }
    return ["memory": ["heapUsedBytes": .int(Int64(clamping: allocated))]]
  case "stats":
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
  case "dispose":
    try bus().dispose()
    emitters.withLock { $0 = $0.filter { $0.value.isActive } }
    return [:]
  case "shutdown":
    return [:]
  case let other:
    throw SerializedError(message: "unknown op \(other ?? "(none)")")
  }
}

while let line = readLine(strippingNewline: true) {
  if line.isEmpty { continue }
  guard case .success(.object(let op)) = KenshoCodec.parse(Data(line.utf8)) else {
    FileHandle.standardError.write(Data("not a JSON object: \(line.prefix(80))\n".utf8))
    continue
  }
  var ack: [String: JSONValue]
  do {
    ack = try handle(op)
  } catch {
    ack = ["error": .string("\(error)")]
  }
  ack["event"] = "ack"
  ack["id"] = op["id"] ?? .null
  ack["nextTimerMs"] = clock.nextDeadline.map { .double(Double($0) / 1e6) } ?? .null
  output.emit(ack)
  output.flush()
  if op["op"]?.stringValue == "shutdown" { break }
}
