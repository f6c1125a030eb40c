import DequeModule

/// A set that remembers only its `capacity` most recent members: memory stays fixed however
/// many are inserted.
struct RecentSet<Element: Hashable> {
  private var members: Set<Element> = []
  private var order = Deque<Element>()
  let capacity: Int

  init(capacity: Int) {
    self.capacity = max(1, capacity)
  }

  /// Inserts `element`; returns false when it was already remembered.
  mutating func insert(_ element: Element) -> Bool {
    guard members.insert(element).inserted else { return false }
    order.append(element)
    if order.count > capacity, let oldest = order.popFirst() {
      members.remove(oldest)
    }
    return true
  }

  func contains(_ element: Element) -> Bool { members.contains(element) }

  var count: Int { members.count }
}
