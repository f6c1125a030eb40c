import Synchronization

/// Message and stream ids: a random per-bus prefix and a counter, in base 36.
///
/// Ids stay within 15 UTF-8 bytes for the first 36^8 ids of a bus, so Swift stores them inline
/// and making one allocates nothing.
final class IdGenerator: Sendable {
  private static let digits = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
  private let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
  private let counter = Atomic<UInt64>(0)

  init() {
    var g = SystemRandomNumberGenerator()
    func d() -> UInt8 { Self.digits[Int(g.next(upperBound: 36 as UInt64))] }
    // A letter first, so that ids read as names in logs.
    prefix = (Self.digits[10 + Int(g.next(upperBound: 26 as UInt64))], d(), d(), d(), d(), d())
  }

  func next() -> String {
    var n = counter.wrappingAdd(1, ordering: .relaxed).newValue
    // 15 bytes is the inline capacity; asking for no more keeps the string off the heap.
    let capacity = n < 2_821_109_907_456 ? 15 : 24
    return String(unsafeUninitializedCapacity: capacity) { buffer in
      buffer[0] = prefix.0
      buffer[1] = prefix.1
      buffer[2] = prefix.2
      buffer[3] = prefix.3
      buffer[4] = prefix.4
      buffer[5] = prefix.5
      buffer[6] = 0x2D  // "-"
      var count = 1
      var rest = n / 36
      while rest > 0 {
        count += 1
        rest /= 36
      }
      var i = 7 + count
      repeat {
        i -= 1
        buffer[i] = Self.digits[Int(n % 36)]
        n /= 36
      } while n > 0
      return 7 + count
    }
  }
}
