import DequeModule

/// A first-in-first-out queue that gives back its storage when it empties after a burst, so
/// that memory returns to its baseline once traffic stops (KSP-9.2). Deque keeps its capacity.
struct FIFO<Element> {
  private var storage = Deque<Element>()
  private var peak = 0
  /// Queues longer than this at their peak free their storage when they empty.
  private static var keptCapacity: Int { 1024 }

  var isEmpty: Bool { storage.isEmpty }
  var count: Int { storage.count }

  mutating func append(_ element: Element) {
    storage.append(element)
    if storage.count > peak { peak = storage.count }
  }

  mutating func popFirst() -> Element? {
    let first = storage.popFirst()
    if storage.isEmpty && peak > Self.keptCapacity {
      storage = Deque()
      peak = 0
    }
    return first
  }
}
