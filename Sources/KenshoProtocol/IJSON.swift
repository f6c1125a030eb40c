/// JSON equality as PROTOCOL.md defines it under KSP-3.2 (I-JSON, RFC 7493): objects compare as
/// sets of members, arrays element by element, strings by code points, numbers as IEEE-754
/// doubles. An integer beyond ±(2^53−1) that a double cannot hold exactly is equal to the
/// double it rounds to, so an implementation that carries numbers as doubles is not blamed.
extension JSONValue {
  /// Whether `self` and `other` are equal under I-JSON (numbers as doubles, -0 equal to 0).
  public func ijsonEquals(_ other: JSONValue) -> Bool {
    switch (self, other) {
    case (.null, .null): return true
    case (.bool(let a), .bool(let b)): return a == b
    case (.int, .int), (.int, .double), (.double, .int), (.double, .double):
      return (self.doubleValue ?? .nan) == (other.doubleValue ?? .nan)
    case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
    case (.array(let a), .array(let b)):
      return a.count == b.count && zip(a, b).allSatisfy { $0.ijsonEquals($1) }
    case (.object(let a), .object(let b)):
      guard a.count == b.count else { return false }
      for (key, value) in a {
        guard let theirs = b[key], value.ijsonEquals(theirs) else { return false }
      }
      return true
    default: return false
    }
  }

  /// A 64-bit fingerprint that is equal for values equal under ``ijsonEquals(_:)`` (FNV-1a over a
  /// canonical form: numbers as doubles, object members sorted by key). Checks compare
  /// fingerprints so that a run's history never holds payloads.
  public var ijsonFingerprint: UInt64 {
    var h = FNV()
    Self.feed(self, into: &h)
    return h.value
  }

  private static func feed(_ v: JSONValue, into h: inout FNV) {
    switch v {
    case .null: h.byte(0)
    case .bool(let b): h.byte(b ? 1 : 2)
    case .int, .double:
      h.byte(3)
      var d = v.doubleValue ?? .nan
      if d == 0 { d = 0 }  // -0 and 0 are one number
      h.word(d.isNaN ? Double.nan.bitPattern : d.bitPattern)
    case .string(let s):
      h.byte(4)
      for byte in s.utf8 { h.byte(byte) }
      h.byte(0xFF)
    case .array(let a):
      h.byte(5)
      h.word(UInt64(a.count))
      for e in a { feed(e, into: &h) }
    case .object(let o):
      h.byte(6)
      h.word(UInt64(o.count))
      for key in o.keys.sorted(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }) {
        for byte in key.utf8 { h.byte(byte) }
        h.byte(0xFF)
        if let value = o[key] { feed(value, into: &h) }
      }
    }
  }
}

/// FNV-1a, 64 bits.
private struct FNV {
  var value: UInt64 = 0xcbf2_9ce4_8422_2325
  mutating func byte(_ b: UInt8) {
    value ^= UInt64(b)
    value = value &* 0x100_0000_01b3
  }
  mutating func word(_ w: UInt64) {
    for shift in stride(from: 0, to: 64, by: 8) { byte(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
  }
}
