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

  /// A 64-bit fingerprint that is equal for values equal under ``ijsonEquals(_:)``: numbers
  /// hashed as doubles (-0 as 0), strings by their UTF-8 bytes, arrays in order, and object
  /// members combined by a commutative sum of their own hashes, so that member order does not
  /// matter and nothing is sorted. Checks compare fingerprints so that a run's history never
  /// holds payloads.
  public var ijsonFingerprint: UInt64 {
    var h = Mix()
    Self.feed(self, into: &h)
    return h.finish()
  }

  private static func feed(_ v: JSONValue, into h: inout Mix) {
    switch v {
    case .null: h.word(0x6E75_6C6C)
    case .bool(let b): h.word(b ? 0x7472_7565 : 0x6661_6C73)
    case .int, .double:
      var d = v.doubleValue ?? .nan
      if d == 0 { d = 0 }  // -0 and 0 are one number
      h.word(3)
      h.word(d.isNaN ? Double.nan.bitPattern : d.bitPattern)
    case .string(let s):
      h.word(4)
      h.string(s)
    case .array(let a):
      h.word(5)
      h.word(UInt64(a.count))
      for e in a { feed(e, into: &h) }
    case .object(let o):
      h.word(6)
      h.word(UInt64(o.count))
      var members: UInt64 = 0
      for (key, value) in o {
        var m = Mix()
        m.string(key)
        feed(value, into: &m)
        members = members &+ m.finish()
      }
      h.word(members)
    }
  }
}

/// A 64-bit streaming hash: each word is folded in with a multiply and a rotation, and the
/// result goes through the SplitMix64 finalizer. Not cryptographic: it tells payloads apart.
private struct Mix {
  private var value: UInt64 = 0x9E37_79B9_7F4A_7C15

  mutating func word(_ w: UInt64) {
    value = ((value ^ w) &* 0xBF58_476D_1CE4_E5B9)
    value = (value << 31) | (value >> 33)
  }

  mutating func string(_ s: String) {
    var s = s
    s.withUTF8 { bytes in
      var i = 0
      while i + 8 <= bytes.count {
        var w: UInt64 = 0
        for k in 0..<8 { w |= UInt64(bytes[i + k]) << UInt64(8 * k) }
        word(w)
        i += 8
      }
      var tail: UInt64 = 0
      var shift: UInt64 = 0
      while i < bytes.count {
        tail |= UInt64(bytes[i]) << shift
        shift += 8
        i += 1
      }
      word(tail)
      word(UInt64(bytes.count))
    }
  }

  func finish() -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
