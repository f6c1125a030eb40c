/// KSP-11.1: every frame reaches every other open connection, unchanged and of the same kind,
/// and never its sender.
public struct RelayFanOut: Check {
  public let rule = "KSP-11.1"
  public let expected = "each probe frame at every other connection, byte for byte and of its kind; none echoed"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    let steady = j.connections.filter(\.openThroughout)
    let sent = steady.reduce(0) { $0 + $1.sent.filter { !RelayJournal.isPing($0) }.count }
    guard steady.count >= 2, sent > 0 else {
      return j.problems.isEmpty
        ? .untested("fewer than two probe connections stayed open, or none sent a frame")
        : .error(j.problems.joined(separator: "; "))
    }
    var checked = 0
    for sender in steady {
      let own = Set(sender.sent.filter { !RelayJournal.isPing($0) }.map { FrameKey($0) })
      if let echo = sender.received.first(where: { own.contains(FrameKey($0)) }) {
        return .fail(
          observed: "\(sender.name) received its own frame back",
          RelayProbeNeeded.counterexample("\(sender.name) sent \(echo.shown) and the relay sent it back", at: echo.t))
      }
      for receiver in steady where receiver.name != sender.name {
        var got: [FrameKey: Int] = [:]
        for f in receiver.received { got[FrameKey(f), default: 0] += 1 }
        for f in sender.sent where !RelayJournal.isPing(f) {
          checked += 1
          if got[FrameKey(f), default: 0] > 0 {
            got[FrameKey(f), default: 0] -= 1
            continue
          }
          let other = FrameKey(text: !f.text, body: f.body)
          let why = got[other, default: 0] > 0 ? " (it arrived as a \(f.text ? "binary" : "text") frame)" : ""
          return .fail(
            observed: "a frame from \(sender.name) never reached \(receiver.name)\(why)",
            RelayProbeNeeded.counterexample(
              "\(sender.name) sent \(f.shown); \(receiver.name) never received it\(why)", at: f.t))
        }
      }
    }
    return .pass(observed: "\(checked) deliveries over \(steady.count) connections, none echoed")
  }
}

/// A frame's identity: its kind and bytes.
struct FrameKey: Hashable {
  var text: Bool
  var body: [UInt8]
  init(text: Bool, body: [UInt8]) {
    self.text = text
    self.body = body
  }
  init(_ f: RelayJournal.Frame) { self.init(text: f.text, body: f.body) }
}
