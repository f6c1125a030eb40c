/// KSP-11.2: frames from one sender reach each receiver in the order they were sent.
public struct RelayOrder: Check {
  public let rule = "KSP-11.2"
  public let expected = "at each receiver, each sender's frames in the order sent"
  public init() {}

  public func judge(_ run: RunRecord) -> CheckOutcome {
    guard let j = run.history.relay else { return RelayProbeNeeded.absent }
    var pairs = 0
    for sender in j.connections {
      // Position of each frame in the sender's order (probe frames are unique).
      var position: [FrameKey: Int] = [:]
      for (i, f) in sender.sent.enumerated() where !RelayJournal.isPing(f) { position[FrameKey(f)] = i }
      guard position.count >= 2 else { continue }
      for receiver in j.connections where receiver.name != sender.name {
        var last = -1
        var lastFrame: RelayJournal.Frame?
        var seen = 0
        for f in receiver.received {
          guard let p = position[FrameKey(f)] else { continue }
          seen += 1
          if p < last, let previous = lastFrame {
            return .fail(
              observed: "\(receiver.name) got \(sender.name)'s frames out of order",
              RelayProbeNeeded.counterexample(
                "\(receiver.name) received \(f.shown) (sent #\(p)) after \(previous.shown) (sent #\(last))", at: f.t))
          }
          last = p
          lastFrame = f
        }
        if seen >= 2 { pairs += 1 }
      }
    }
    guard pairs > 0 else {
      return j.problems.isEmpty
        ? .untested("no receiver got two frames of one sender")
        : .error(j.problems.joined(separator: "; "))
    }
    return .pass(observed: "order kept on \(pairs) sender–receiver pairs")
  }
}
