import Foundation
import KenshoProtocol
import Testing

@Suite("JSON text")
struct JSONTextTests {
  /// A random JSON value from a seeded generator.
  static func random(_ rng: inout some RandomNumberGenerator, depth: Int = 0) -> JSONValue {
    switch Int.random(in: 0..<(depth > 3 ? 6 : 8), using: &rng) {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &rng))
    case 2: return .int(Int64.random(in: .min ... .max, using: &rng))
    case 3: return .double(Double.random(in: -1e9...1e9, using: &rng))
    case 4, 5:
      let pool = ["", "a", "é", "日本", "\"quoted\"", "back\\slash", "line\nbreak", "tab\t", "\u{1}", "😀", "/"]
      return .string(
        (0..<Int.random(in: 0..<4, using: &rng)).map { _ in pool.randomElement(using: &rng) ?? "" }.joined())
    case 6: return .array((0..<Int.random(in: 0..<4, using: &rng)).map { _ in random(&rng, depth: depth + 1) })
    default:
      var o: [String: JSONValue] = [:]
      for i in 0..<Int.random(in: 0..<4, using: &rng) { o["k\(i)\(depth)"] = random(&rng, depth: depth + 1) }
      return .object(o)
    }
  }

  @Test("serialize then parse gives the value back, and Foundation reads the same value")
  func roundTrip() throws {
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<2_000 {
      let value = Self.random(&rng)
      let bytes = try JSONText.serialize(value)
      #expect(try JSONText.parse(bytes) == value)
      #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) == value)
    }
  }

  @Test("parses what Foundation writes, escapes and surrogate pairs included")
  func parsesForeignText() throws {
    let text = #"{"a":[1,-2.5e3,true,false,null],"s":"\u00e9\ud83d\ude00\n\/","n":{"m":{}}}"#
    let value = try JSONText.parse(Array(text.utf8))
    #expect(value == ["a": [1, -2500, true, false, .null], "s": "é😀\n/", "n": ["m": [:]]])
    #expect(try JSONText.parse(Array(" 12 ".utf8)) == 12)
  }

  @Test("rejects what is not JSON, saying where")
  func rejects() {
    for bad in [
      "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\":}", "{\"a\":1]", "{1:2}",
      "tru", "01", "1.", "\"\\x\"", "\"\u{1}\"", "[1] 2", "\"\\ud800\"", "-",
    ] {
      #expect(throws: JSONText.ParseError.self, "\(bad)") { try JSONText.parse(Array(bad.utf8)) }
    }
    let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
    #expect(throws: JSONText.ParseError.self) { try JSONText.parse(Array(deep.utf8)) }
    #expect(throws: JSONText.ParseError.self) { try JSONText.serialize(.double(.infinity)) }
  }

  @Test("objects are written with their members in the order of their names, whatever their number")
  func membersSorted() throws {
    var rng = SystemRandomNumberGenerator()
    let names = ["a", "ab", "b", "B", "é", "z", "", "aa", "😀", "k1", "k10", "k2"]
    for _ in 0..<3_000 {
      var o: [String: JSONValue] = [:]
      for _ in 0..<Int.random(in: 0...4, using: &rng) { o[names.randomElement(using: &rng) ?? "a"] = Self.random(&rng) }
      let bytes = try JSONText.serialize(.object(o))
      #expect(try JSONText.parse(bytes) == .object(o))
      // The names as written, in order: what a sort of the names gives.
      var written: [String] = []
      var expected = ""
      for (i, name) in o.keys.sorted().enumerated() {
        written.append(name)
        expected += (i > 0 ? "," : "") + String(decoding: try JSONText.serialize(.string(name)), as: UTF8.self) + ":"
        expected += String(decoding: try JSONText.serialize(o[name] ?? .null), as: UTF8.self)
      }
      #expect(String(decoding: bytes, as: UTF8.self) == "{" + expected + "}", "names \(written)")
    }
  }

  @Test("nesting counts arrays and objects, the deepest branch")
  func nesting() throws {
    #expect(JSONValue.int(1).nesting == 0)
    #expect(JSONValue.array([]).nesting == 1)
    #expect(try JSONText.parse(Array(#"{"a":[[1]],"b":{}}"#.utf8)).nesting == 3)
    #expect(try JSONText.parse(Array(#"[1,[2,[3,[4]]],{}]"#.utf8)).nesting == 4)
  }

  @Test("a repeated member name keeps the last value, with one member or several")
  func repeatedNames() throws {
    #expect(try JSONText.parse(Array(#"{"a":1,"a":2}"#.utf8)) == ["a": 2])
    #expect(try JSONText.parse(Array(#"{"a":1,"b":0,"a":3}"#.utf8)) == ["a": 3, "b": 0])
    #expect(try JSONText.parse(Array(#"{ "a" : { "b" : [ ] } }"#.utf8)) == ["a": ["b": []]])
  }
}
