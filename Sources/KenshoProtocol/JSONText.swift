/// JSON text ⇄ ``JSONValue``, directly.
///
/// Every message that crosses a process boundary (the adapter protocol) is parsed and
/// written here. Foundation's `JSONDecoder` needs about 30 µs a message for `JSONValue` (it can
/// only find a value's type by trying each in turn and catching the failures); this is RFC 8259
/// on bytes, with a nesting limit so that hostile input cannot exhaust the stack.
public enum JSONText {
  /// Why text is not JSON: what was expected, at which byte.
  public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var expected: String
    public var description: String { "expected \(expected) at byte \(offset)" }

    /// Where the error is in `text` (the bytes that were parsed), as people and editors count:
    /// line and column from 1, columns in characters (Unicode scalars), lines ended by LF.
    public func position(in text: some Collection<UInt8>) -> (line: Int, column: Int) {
      var line = 1
      var column = 1
      for (i, byte) in text.enumerated() {
        if i >= offset { break }
        if byte == 0x0A {
          line += 1
          column = 1
        } else if byte & 0xC0 != 0x80 {
          column += 1  // not a UTF-8 continuation byte: a new character
        }
      }
      return (line, column)
    }

    /// What is at the error in `text`: the character, quoted, or "the end of the text".
    public func found(in text: some Collection<UInt8>) -> String {
      let rest = text.dropFirst(offset)
      guard let first = rest.first else { return "the end of the text" }
      let length = first < 0x80 ? 1 : first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : 2
      let character = String(decoding: rest.prefix(length), as: UTF8.self)
      return "\"\(character)\""
    }
  }

  /// Deepest nesting of arrays and objects accepted.
  public static let maxDepth = 512

  /// Deepest nesting of one value that kensho-bench carries in a line (a payload in a message,
  /// a message in an adapter line, a scenario's args or chunk values): lines wrap such a value
  /// a few levels down, and must stay within ``maxDepth`` wherever it goes.
  public static let maxValueNesting = 500

  /// Parses one JSON value (surrounding whitespace allowed, nothing else).
  public static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> JSONValue {
    let array = Array(bytes)
    return try array.withUnsafeBufferPointer { buffer throws(ParseError) in
      var parser = Parser(bytes: buffer)
      parser.skipSpace()
      let value = try parser.value(depth: 0)
      parser.skipSpace()
      guard parser.at == buffer.count else { throw ParseError(offset: parser.at, expected: "the end of the text") }
      return value
    }
  }

  /// Parses one value that starts at `at` in `bytes` (after any whitespace), nested `depth`
  /// deep, and leaves `at` just after it: for a decoder that reads a known envelope itself and
  /// hands the values inside it here, so that they come out as ``parse(_:)`` makes them.
  public static func value(
    in bytes: UnsafeBufferPointer<UInt8>, at: inout Int, depth: Int, maxDepth: Int = JSONText.maxDepth
  ) throws(ParseError) -> JSONValue {
    var parser = Parser(bytes: bytes)
    parser.maxDepth = min(maxDepth, JSONText.maxDepth)
    parser.at = at
    parser.skipSpace()
    let value = try parser.value(depth: depth)
    at = parser.at
    return value
  }

  /// Writes compact JSON with object keys sorted; fails on a non-finite number.
  public static func serialize(_ value: JSONValue) throws(ParseError) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(64)
    try write(value, into: &out)
    return out
  }

  static func write(_ value: JSONValue, into out: inout [UInt8]) throws(ParseError) {
    switch value {
    case .null: out.append(contentsOf: "null".utf8)
    case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
    case .int(let i): writeInteger(i, into: &out)
    case .double(let d):
      guard d.isFinite else { throw ParseError(offset: out.count, expected: "a finite number") }
      if d == d.rounded(), abs(d) < 1e15 {
        out.append(contentsOf: String(Int64(d)).utf8)
      } else {
        out.append(contentsOf: "\(d)".utf8)
      }
    case .string(let s): writeString(s, into: &out)
    case .array(let items):
      out.append(UInt8(ascii: "["))
      for (i, item) in items.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        try write(item, into: &out)
      }
      out.append(UInt8(ascii: "]"))
    case .object(let members):
      out.append(UInt8(ascii: "{"))
      if members.count <= 2 {
        // One or two members (most payloads): in order without sorting into an array.
        var pair = members.makeIterator()
        if let a = pair.next() {
          if let b = pair.next() {
            let (first, second) = a.key < b.key ? (a, b) : (b, a)
            try writeMember(first.key, first.value, into: &out)
            out.append(UInt8(ascii: ","))
            try writeMember(second.key, second.value, into: &out)
          } else {
            try writeMember(a.key, a.value, into: &out)
          }
        }
      } else {
        // Sorted with their values: no second lookup (and hashing) of each key.
        for (i, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
          if i > 0 { out.append(UInt8(ascii: ",")) }
          try writeMember(member.key, member.value, into: &out)
        }
      }
      out.append(UInt8(ascii: "}"))
    }
  }

  private static func writeMember(_ key: String, _ value: JSONValue, into out: inout [UInt8]) throws(ParseError) {
    writeString(key, into: &out)
    out.append(UInt8(ascii: ":"))
    try write(value, into: &out)
  }

  /// Writes an object of `members` as ``serialize(_:)`` writes the same object, without
  /// making a dictionary of them: for the hot paths that know their members. Names must be
  /// distinct.
  public static func writeObject(_ members: [(String, JSONValue)], into out: inout [UInt8]) throws(ParseError) {
    out.append(UInt8(ascii: "{"))
    for (i, member) in members.sorted(by: { $0.0 < $1.0 }).enumerated() {
      if i > 0 { out.append(UInt8(ascii: ",")) }
      writeString(member.0, into: &out)
      out.append(UInt8(ascii: ":"))
      try write(member.1, into: &out)
    }
    out.append(UInt8(ascii: "}"))
  }

  /// Writes `value` compact, with object keys sorted, after what `out` holds.
  public static func append(_ value: JSONValue, to out: inout [UInt8]) throws(ParseError) {
    try write(value, into: &out)
  }

  /// Writes `s` as a JSON string after what `out` holds.
  public static func append(string s: String, to out: inout [UInt8]) {
    writeString(s, into: &out)
  }

  /// Decimal digits of `i`, written without a String in between.
  static func writeInteger(_ i: Int64, into out: inout [UInt8]) {
    if i < 0 { out.append(UInt8(ascii: "-")) }
    var magnitude = i.magnitude
    var digits: (UInt64, UInt64) = (0, 0)  // 16 bytes of room; 20 digits at most, see below
    if magnitude >= 10_000_000_000_000_000 {
      out.append(contentsOf: String(magnitude).utf8)
      return
    }
    var count = 0
    withUnsafeMutableBytes(of: &digits) { room in
      repeat {
        room[15 - count] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30
        magnitude /= 10
        count += 1
      } while magnitude > 0
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: room[(16 - count)...]))
    }
  }

  static func writeString(_ s: String, into out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    // Most strings need no escape: copied whole, from their contiguous UTF-8.
    let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
      for byte in bytes where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
        return false
      }
      out.append(contentsOf: bytes)
      return true
    }
    if copied == true {
      out.append(UInt8(ascii: "\""))
      return
    }
    for byte in s.utf8 {
      switch byte {
      case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
      case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
      case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
      case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
      case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
      case 0..<0x20:
        let hex = Array("0123456789abcdef".utf8)
        out.append(contentsOf: [
          UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 15)],
        ])
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "\""))
  }

  private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    var at = 0
    var maxDepth = JSONText.maxDepth

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ expected: String) -> ParseError { ParseError(offset: at, expected: expected) }

    mutating func skipSpace() {
      while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 {
        at += 1
      }
    }

    mutating func literal(_ word: StaticString, _ value: JSONValue) throws(ParseError) -> JSONValue {
      let count = word.utf8CodeUnitCount
      guard at + count <= bytes.count else { throw fail("\(word)") }
      for i in 0..<count where bytes[at + i] != word.utf8Start[i] { throw fail("\(word)") }
      at += count
      return value
    }

    mutating func value(depth: Int) throws(ParseError) -> JSONValue {
      guard at < bytes.count else { throw fail("a value") }
      switch bytes[at] {
      case UInt8(ascii: "{"): return try object(depth: depth + 1)
      case UInt8(ascii: "["): return try array(depth: depth + 1)
      case UInt8(ascii: "\""): return .string(try string())
      case UInt8(ascii: "t"): return try literal("true", .bool(true))
      case UInt8(ascii: "f"): return try literal("false", .bool(false))
      case UInt8(ascii: "n"): return try literal("null", .null)
      case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
      default: throw fail("a value")
      }
    }

    mutating func object(depth: Int) throws(ParseError) -> JSONValue {
      guard depth <= maxDepth else { throw fail("nesting at most \(maxDepth) deep") }
      at += 1
      skipSpace()
      if at < bytes.count, bytes[at] == UInt8(ascii: "}") {
        at += 1
        return .object([:])
      }
      // The first member alone (most payloads have one): its dictionary, and no list of pairs.
      let first = try member(depth: depth)
      if try objectEnds() { return .object([first.0: first.1]) }
      // Members are collected first, so that the dictionary is made once at its size.
      var pairs: [(String, JSONValue)] = [first]
      pairs.reserveCapacity(8)
      repeat {
        pairs.append(try member(depth: depth))
      } while try !objectEnds()
      var members = [String: JSONValue](minimumCapacity: pairs.count)
      for (key, value) in pairs { members[key] = value }  // a repeated name: the last one
      return .object(members)
    }

    /// `"name": value` of an object.
    mutating func member(depth: Int) throws(ParseError) -> (String, JSONValue) {
      skipSpace()
      guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("a member name") }
      let key = try string()
      skipSpace()
      guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("':'") }
      at += 1
      skipSpace()
      return (key, try value(depth: depth))
    }

    /// After a member: true at `}`, false at `,` (both read), an error at anything else.
    mutating func objectEnds() throws(ParseError) -> Bool {
      skipSpace()
      guard at < bytes.count else { throw fail("',' or '}'") }
      let c = bytes[at]
      guard c == UInt8(ascii: "}") || c == UInt8(ascii: ",") else { throw fail("',' or '}'") }
      at += 1
      return c == UInt8(ascii: "}")
    }

    mutating func array(depth: Int) throws(ParseError) -> JSONValue {
      guard depth <= maxDepth else { throw fail("nesting at most \(maxDepth) deep") }
      at += 1
      var items: [JSONValue] = []
      skipSpace()
      if at < bytes.count, bytes[at] == UInt8(ascii: "]") {
        at += 1
        return .array(items)
      }
      while true {
        skipSpace()
        items.append(try value(depth: depth))
        skipSpace()
        guard at < bytes.count else { throw fail("',' or ']'") }
        if bytes[at] == UInt8(ascii: ",") {
          at += 1
          continue
        }
        guard bytes[at] == UInt8(ascii: "]") else { throw fail("',' or ']'") }
        at += 1
        return .array(items)
      }
    }

    mutating func hex4() throws(ParseError) -> UInt32 {
      guard at + 4 <= bytes.count else { throw fail("four hex digits") }
      var v: UInt32 = 0
      for _ in 0..<4 {
        let c = bytes[at]
        let d: UInt32
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
        default: throw fail("a hex digit")
        }
        v = v << 4 | d
        at += 1
      }
      return v
    }

    mutating func string() throws(ParseError) -> String {
      at += 1
      let start = at
      // Fast path: no escapes.
      while at < bytes.count {
        let c = bytes[at]
        if c == UInt8(ascii: "\"") {
          let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
          at += 1
          return s
        }
        if c == UInt8(ascii: "\\") { break }
        if c < 0x20 { throw fail("no control character in a string") }
        at += 1
      }
      var out = Array(bytes[start..<at])
      while at < bytes.count {
        let c = bytes[at]
        if c == UInt8(ascii: "\"") {
          at += 1
          return String(decoding: out, as: UTF8.self)
        }
        if c < 0x20 { throw fail("no control character in a string") }
        guard c == UInt8(ascii: "\\") else {
          out.append(c)
          at += 1
          continue
        }
        at += 1
        guard at < bytes.count else { throw fail("an escape") }
        let e = bytes[at]
        at += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          var scalar = try hex4()
          if (0xD800...0xDBFF).contains(scalar) {
            // A high surrogate must be followed by a low one.
            guard at + 2 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
              throw fail("a low surrogate")
            }
            at += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw fail("a low surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let u = Unicode.Scalar(scalar) else { throw fail("a Unicode scalar") }
          out.append(contentsOf: Array(String(Character(u)).utf8))
        default: throw fail("an escape")
        }
      }
      throw fail("'\"'")
    }

    mutating func number() throws(ParseError) -> JSONValue {
      let start = at
      var integral = true
      if bytes[at] == UInt8(ascii: "-") { at += 1 }
      guard at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else { throw fail("a digit") }
      if bytes[at] == UInt8(ascii: "0") {
        at += 1
      } else {
        while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
      }
      if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
        integral = false
        at += 1
        guard at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else {
          throw fail("a digit")
        }
        while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
      }
      if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
        integral = false
        at += 1
        if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
        guard at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else {
          throw fail("a digit")
        }
        while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
      }
      if integral, at - start <= 18 {
        // At most 18 digits (with a sign): an Int64 for sure, read without a String.
        var i: Int64 = 0
        for k in (bytes[start] == UInt8(ascii: "-") ? start + 1 : start)..<at { i = i &* 10 &+ Int64(bytes[k] &- 0x30) }
        return .int(bytes[start] == UInt8(ascii: "-") ? -i : i)
      }
      let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
      if integral, let i = Int64(text) { return .int(i) }
      guard let d = Double(text) else { throw fail("a number") }
      return .double(d)
    }
  }
}
