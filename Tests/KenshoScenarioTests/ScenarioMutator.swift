import Foundation
import KenshoProtocol
import KenshoScenario

/// Makes hostile scenario files from valid ones, deterministically from a seed: numbers made
/// huge, negative, tiny or written oddly (`1e400`, `-0`, `1E+19`), strings full of control
/// characters and escape sequences, members removed, duplicated, renamed or of the wrong type,
/// arrays blown up, values nested past the parser's limit, and now and then bytes flipped or cut.
struct ScenarioMutator {
  typealias Node = MutantNode

  let corpus: [(name: String, node: Node)]
  var rng: SplitMix64

  init(corpus: [(name: String, json: JSONValue)], seed: UInt64) {
    self.corpus = corpus.map { ($0.name, Self.node($0.json)) }
    rng = SplitMix64(seed: seed)
  }

  /// The corpus: every scenario file under `folder`.
  static func corpus(_ folder: URL) throws -> [(name: String, json: JSONValue)] {
    try ScenarioLoader.files(in: [folder.path]).map { file in
      let data = try Data(contentsOf: URL(fileURLWithPath: file))
      return ((file as NSString).lastPathComponent, try JSONText.parse(data))
    }
  }

  static func node(_ v: JSONValue) -> Node {
    switch v {
    case .null: .null
    case .bool(let b): .bool(b)
    case .int(let i): .number(String(i))
    case .double(let d): .number(String(d))
    case .string(let s): .string(s)
    case .array(let a): .array(a.map(node))
    case .object(let o): .object(o.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: node($0.value)) })
    }
  }

  // MARK: Hostile values

  static let numbers = [
    "1e19", "-1e19", "1e308", "-1e308", "1e300", "1e400", "-1e400", "-0", "-0.0", "0", "-1", "1e13", "1e12",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616", "0.5", "1e-300",
    "5e-324", "4294967296", "2147483648", "1000000000", "1000000001", "10000000", "10000001", "100000", "100001",
    "1E+19", "1e9", "0.001", "0.0009", "67108864", "67108865", "1073741825", "123456789012345678901234567890",
  ]

  static let strings = [
    "", "\u{0}", "\n", "\r\n", "\t", "\u{1B}[31mred\u{1B}[0m", "\u{1B}]0;title\u{7}", "\u{1B}[2J", "\u{7F}", "\u{85}",
    "\u{9B}31m", "\u{202E}txet", "\u{2028}", "\u{FEFF}", "\u{FFFE}", "\u{FFFF}", "\u{10FFFF}", "\u{E000}",
    "x\nerror: /etc/passwd: expected nothing, found nothing", "\"quoted\" \\ back", "$.agents[0]", "a.b", "[0]",
    "kensho-scenario/1", "p", "c", "consumer", "producer", "end", "error", "delay", "uniform", "sequence", "binary",
  ]

  mutating func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
  mutating func chance(_ percent: UInt64) -> Bool { rng.next() % 100 < percent }

  mutating func hostileString() -> String {
    switch rng.next() % 4 {
    case 0: return String(repeating: pick(Self.strings), count: Int(rng.next() % 3) + 1)
    case 1: return pick(Self.strings) + pick(Self.strings)
    case 2: return String(repeating: "a", count: Int(rng.next() % 300))
    default: return pick(Self.strings)
    }
  }

  mutating func hostileValue(depth: Int = 0) -> Node {
    switch rng.next() % 8 {
    case 0: return .number(pick(Self.numbers))
    case 1: return .string(hostileString())
    case 2: return .null
    case 3: return .bool(chance(50))
    case 4:
      return depth > 2 ? .array([]) : .array((0..<Int(rng.next() % 3)).map { _ in hostileValue(depth: depth + 1) })
    case 5:
      return depth > 2
        ? .object([])
        : .object([
          .init(key: hostileString(), value: hostileValue(depth: depth + 1)),
          .init(key: "kind", value: .string("drop")),
        ])
    case 6:
      // Nested past the parser's limit (512), or just under it.
      let depth = chance(50) ? 600 : 100
      var n: Node = .number("1")
      for _ in 0..<depth { n = .array([n]) }
      return n
    default: return .number(pick(Self.numbers))
    }
  }

  // MARK: Mutation

  /// The next mutant: its corpus file's name and its text.
  mutating func next() -> (source: String, text: [UInt8]) {
    let (name, original) = pick(corpus)
    var node = original
    for _ in 0..<(Int(rng.next() % 4) + 1) { node = mutate(node, depth: 0) }
    var text: [UInt8] = []
    write(node, into: &text)
    if chance(8) { text = mutateBytes(text) }
    return (name, text)
  }

  /// Mutates one place of `node`: walks down a random path and changes what it finds there.
  mutating func mutate(_ node: Node, depth: Int) -> Node {
    // The deeper, the likelier it stops here.
    let stop = depth > 0 && chance(UInt64(min(90, 15 + depth * 15)))
    switch node {
    case .object(var members) where !members.isEmpty && !stop:
      let i = Int(rng.next() % UInt64(members.count))
      switch rng.next() % 10 {
      case 0: members.remove(at: i)
      case 1: members.insert(.init(key: members[i].key, value: hostileValue()), at: i)  // a duplicate member
      case 2: members[i].key = hostileString()  // renamed
      case 3: members.append(.init(key: hostileString(), value: hostileValue()))  // unknown member
      default: members[i].value = mutate(members[i].value, depth: depth + 1)
      }
      return .object(members)
    case .array(var items) where !items.isEmpty && !stop:
      let i = Int(rng.next() % UInt64(items.count))
      switch rng.next() % 8 {
      case 0: items.remove(at: i)
      case 1: items.append(contentsOf: Array(repeating: items[i], count: Int(rng.next() % 200) + 1))
      case 2: items.insert(hostileValue(), at: i)
      default: items[i] = mutate(items[i], depth: depth + 1)
      }
      return .array(items)
    case .number:
      return chance(85) ? .number(pick(Self.numbers)) : hostileValue()
    case .string:
      return chance(80) ? .string(hostileString()) : hostileValue()
    default:
      return hostileValue()
    }
  }

  /// Flips, cuts or inserts bytes (the text then is rarely JSON, and maybe not UTF-8).
  mutating func mutateBytes(_ text: [UInt8]) -> [UInt8] {
    var bytes = text
    guard !bytes.isEmpty else { return [0xFF] }
    switch rng.next() % 4 {
    case 0: bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
    case 1: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
    case 2: bytes.insert(contentsOf: [0xC3, 0x28, 0xFF, 0xFE, 0x00], at: Int(rng.next() % UInt64(bytes.count)))
    default:
      let i = Int(rng.next() % UInt64(bytes.count))
      bytes.insert(contentsOf: Array("\"\u{1B}[31m\n\":1,".utf8), at: i)
    }
    return bytes
  }

  // MARK: Text

  func write(_ node: Node, into out: inout [UInt8]) {
    switch node {
    case .null: out += Array("null".utf8)
    case .bool(let b): out += Array((b ? "true" : "false").utf8)
    case .number(let token): out += Array(token.utf8)
    case .string(let s): writeString(s, into: &out)
    case .array(let items):
      out.append(UInt8(ascii: "["))
      for (i, item) in items.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        write(item, into: &out)
      }
      out.append(UInt8(ascii: "]"))
    case .object(let members):
      out.append(UInt8(ascii: "{"))
      for (i, member) in members.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        writeString(member.key, into: &out)
        out.append(UInt8(ascii: ":"))
        write(member.value, into: &out)
      }
      out.append(UInt8(ascii: "}"))
    }
  }

  /// A JSON string: control characters as `\u00XX`, the rest as UTF-8.
  func writeString(_ s: String, into out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += Array("\\\"".utf8)
      case "\\": out += Array("\\\\".utf8)
      case _ where scalar.value < 0x20: out += Array(String(format: "\\u%04x", scalar.value).utf8)
      default: out += Array(String(scalar).utf8)
      }
    }
    out.append(UInt8(ascii: "\""))
  }
}

/// A JSON value as text is written: numbers as their raw token, members in order (and possibly
/// repeated).
enum MutantNode {
  case null
  case bool(Bool)
  case number(String)
  case string(String)
  case array([MutantNode])
  case object([Member])

  struct Member {
    var key: String
    var value: MutantNode
  }
}
