public import KenshoProtocol

// A small language for declaring a JSON format once: what each member holds, its range, which
// members are required, which go with which `kind`, and what they mean. One interpreter of it
// validates JSON values, reporting every problem at its JSON path (``FormatChecker``); another
// writes the JSON Schema (``SchemaWriter``). The scenario format is declared with it in
// ``ScenarioFormat``.

/// What a JSON value must be.
public indirect enum Shape: Sendable {
  /// Any JSON value; `what` says what it stands for when it is missing.
  case any(what: String)
  case bool
  case string(StringShape)
  /// An integer (a number without a fraction) in a range.
  case integer(min: Int, max: Int)
  /// A finite number in a range; `what` names it in problems ("a time in ms").
  case number(min: Double, max: Double, what: String)
  case array(ArrayShape)
  case object(ObjectShape)
  /// An object whose members, named freely, all hold `values`.
  case map(values: Shape, what: String)
  /// An object whose members depend on the value of one of them (`kind`, `check`).
  case variant(VariantShape)
  /// An object that is `present` when it has `member`, `absent` otherwise.
  case either(member: String, present: Shape, absent: Shape, what: String)
  /// A shape with a name, written once under `$defs` in the schema.
  case named(String, Shape)
  /// `null`, or a value of the shape.
  case orNull(Shape)

  /// A string that is one of `values`.
  public static func oneOf(_ values: [String]) -> Shape { .string(StringShape(values: values)) }
  /// Exactly this string.
  public static func constant(_ value: String) -> Shape { .string(StringShape(values: [value])) }
  /// Any string.
  public static let text = Shape.string(StringShape())
  /// A string of a format (a worker name, a rule id).
  public static func string(_ format: StringFormat) -> Shape { .string(StringShape(format: format)) }

  /// What a value of this shape is, as problems say it after "expected".
  public var expected: String {
    switch self {
    case .any(let what): what
    case .bool: "true or false"
    case .string(let s): s.expected
    case .integer(let min, let max): "an integer from \(min) to \(max)"
    case .number(let min, let max, let what):
      "\(what) from \(FormatChecker.format(min)) to \(FormatChecker.format(max))"
    case .array(let a): a.what
    case .object(let o): o.what
    case .map(_, let what): what
    case .variant(let v): v.what
    case .either(_, _, _, let what): what
    case .named(_, let shape): shape.expected
    case .orNull(let shape): shape.expected + " or null"
    }
  }

  /// The names of every member an object of this shape can have, in any variant.
  var memberNames: Set<String> {
    switch self {
    case .object(let o): Set(o.fields.map(\.name))
    case .variant(let v): v.memberNames
    case .either(_, let present, let absent, _): present.memberNames.union(absent.memberNames)
    case .named(_, let shape): shape.memberNames
    default: []
    }
  }
}

/// A string format beyond the type: a pattern for the schema, and the same rule in Swift for the
/// loader (which may be stricter: a rule id must also exist in KSP/1).
public struct StringFormat: Sendable {
  /// Its name under `$defs`.
  public var name: String
  /// An ECMA-262 regular expression, for the schema.
  public var pattern: String
  /// What problems say it is ("a worker name ^[A-Za-z]…$").
  public var what: String
  public var doc: String
  /// Whether the loader accepts `value`; at least as strict as `pattern`.
  public var accepts: @Sendable (String) -> Bool

  public init(
    name: String, pattern: String, what: String, doc: String, accepts: @escaping @Sendable (String) -> Bool
  ) {
    self.name = name
    self.pattern = pattern
    self.what = what
    self.doc = doc
    self.accepts = accepts
  }
}

public final class StringShape: Sendable {
  /// The strings allowed; nil: any.
  public let values: [String]?
  /// Length in Unicode code points, as JSON Schema counts it.
  public let minLength: Int?
  public let maxLength: Int?
  public let format: StringFormat?

  public init(values: [String]? = nil, minLength: Int? = nil, maxLength: Int? = nil, format: StringFormat? = nil) {
    self.values = values
    self.minLength = minLength
    self.maxLength = maxLength
    self.format = format
  }

  public var expected: String {
    if let values { return Self.choice(values) }
    if let format { return format.what }
    if minLength != nil || maxLength != nil {
      return "a string of \(minLength ?? 0) to \(maxLength.map(String.init) ?? "any number of") characters"
    }
    return "a string"
  }

  /// `"a"`, `"a" or "b"`, … up to five; `one of a, b, …` beyond.
  static func choice(_ values: [String]) -> String {
    if values.count > 5 { return "one of " + values.joined(separator: ", ") }
    let quoted = values.map { "\"\($0)\"" }
    guard let last = quoted.last else { return "nothing" }
    return quoted.count == 1 ? last : quoted.dropLast().joined(separator: ", ") + " or " + last
  }
}

public final class ArrayShape: Sendable {
  public let items: Shape
  public let minItems: Int
  public let maxItems: Int?
  /// What one item is ("agent"), and several ("agents"), for problems about the count.
  public let noun: String
  public let nouns: String
  /// What the array is, for problems; by default "an array of <nouns>".
  public let what: String

  public init(
    _ items: Shape, minItems: Int = 0, maxItems: Int? = nil, noun: String = "item", nouns: String? = nil,
    what: String? = nil
  ) {
    self.items = items
    self.minItems = minItems
    self.maxItems = maxItems
    self.noun = noun
    self.nouns = nouns ?? noun + "s"
    self.what = what ?? "an array of \(nouns ?? noun + "s")"
  }
}

/// A member of an object.
public final class Field: Sendable {
  public let name: String
  public let shape: Shape
  public let required: Bool
  /// The value used when the member is absent, stated in the schema.
  public let defaultValue: JSONValue?
  public let doc: String

  public init(_ name: String, _ shape: Shape, required: Bool = false, default: JSONValue? = nil, _ doc: String) {
    self.name = name
    self.shape = shape
    self.required = required
    self.defaultValue = `default`
    self.doc = doc
  }
}

/// An object with declared members; any other member is a problem, unless the object is open.
public final class ObjectShape: Sendable {
  /// Members of which at most one may be present, and how to say so.
  public struct Exclusive: Sendable {
    public var members: [String]
    public var what: String
    public init(_ members: [String], _ what: String) {
      self.members = members
      self.what = what
    }
  }

  public let fields: [Field]
  public let doc: String
  /// What it is, for problems ("an error {name, message, code?}").
  public let what: String
  /// Groups of members of which at least one must be present (metric: `min` or `max`).
  public let atLeastOne: [[String]]
  /// Groups of members of which at most one may be present.
  public let atMostOne: [Exclusive]
  /// Further `allOf` items of the schema, for rules the loader checks in code (stated here so
  /// that they come from the same constants).
  public let schemaRules: [SchemaJSON]
  /// Whether members beyond `fields` are allowed (and kept as they are).
  public let open: Bool
  let index: [String: Int]

  public init(
    doc: String, what: String = "an object", _ fields: [Field], atLeastOne: [[String]] = [],
    atMostOne: [Exclusive] = [], schemaRules: [SchemaJSON] = [], open: Bool = false
  ) {
    self.open = open
    self.fields = fields
    self.doc = doc
    self.what = what
    self.atLeastOne = atLeastOne
    self.atMostOne = atMostOne
    self.schemaRules = schemaRules
    var index: [String: Int] = [:]
    for (i, f) in fields.enumerated() { index[f.name] = i }
    self.index = index
  }

  public func field(_ name: String) -> Field? { index[name].map { fields[$0] } }
}

/// An object whose members depend on the value of its member `tag`.
public final class VariantShape: Sendable {
  public struct Case: Sendable {
    /// The values of the tag that select it.
    public var values: [String]
    /// An object (whose `tag` field is declared too), or a variant on another member.
    public var shape: Shape
  }

  public let tag: String
  /// The tag's value when it is absent; nil: the tag is required.
  public let defaultTag: String?
  public let cases: [Case]
  public let doc: String
  public let what: String
  let memberNames: Set<String>
  let byValue: [String: Int]

  public init(tag: String, default defaultTag: String? = nil, doc: String, what: String, _ cases: [Case]) {
    self.tag = tag
    self.defaultTag = defaultTag
    self.cases = cases
    self.doc = doc
    self.what = what
    memberNames = cases.reduce(into: [tag]) { $0.formUnion($1.shape.memberNames) }
    var byValue: [String: Int] = [:]
    for (i, c) in cases.enumerated() { for v in c.values { byValue[v] = i } }
    self.byValue = byValue
  }

  /// Every value of the tag, in declaration order.
  public var tagValues: [String] { cases.flatMap(\.values) }

  /// The shape of the case `value` selects.
  public func shape(for value: String) -> Shape? { byValue[value].map { cases[$0].shape } }
}

extension VariantShape.Case {
  public static func when(_ values: String..., shape: Shape) -> Self { Self(values: values, shape: shape) }
  public static func when(_ values: [String], shape: Shape) -> Self { Self(values: values, shape: shape) }
}

// MARK: - Checking values against shapes

/// Collects problems with their paths instead of stopping at the first, and checks JSON values
/// against shapes.
public class FormatChecker {
  public let file: String
  public private(set) var problems: [ScenarioProblem] = []
  /// Problems beyond ``ScenarioLimits/maxProblems``, counted only.
  public private(set) var unlisted = 0

  public init(file: String) { self.file = file }

  /// Notes a problem (the texts are made only for the problems listed).
  public func problem(
    _ path: @autoclosure () -> String, expected: @autoclosure () -> String, found: @autoclosure () -> String
  ) {
    guard problems.count < ScenarioLimits.maxProblems else {
      unlisted += 1
      return
    }
    problems.append(ScenarioProblem(file: file, path: path(), expected: expected(), found: found()))
  }

  /// Whether a problem was noted.
  public var hasProblems: Bool { !problems.isEmpty || unlisted > 0 }

  /// The problems, and a last one counting those not listed.
  public var finalProblems: [ScenarioProblem] {
    guard unlisted > 0 else { return problems }
    return problems + [
      ScenarioProblem(
        file: file, path: "$", expected: "at most \(ScenarioLimits.maxProblems) problems listed",
        found: "\(unlisted) more")
    ]
  }

  /// A value as problems show it: strings quoted and escaped, numbers exactly.
  public func found(_ v: JSONValue?) -> String {
    guard let v else { return "nothing" }
    switch v {
    case .string(let s): return SafeText.quoted(s)
    case .int(let i): return String(i)
    case .double(let d): return Self.format(d)
    case .bool(let b): return String(b)
    case .null: return "null"
    default: return "an \(v.typeName)"
    }
  }

  /// A number as people write it: integers without a fraction, never a trap.
  public static func format(_ d: Double) -> String {
    if !d.isFinite { return d.isNaN ? "not a number" : "a number beyond ±1.8e308" }
    if d == d.rounded(), d.magnitude <= 1e18 { return String(Int64(d)) }
    return String(d)
  }

  /// The path of member `key` under `path`.
  public func at(_ path: String, _ key: String) -> String { SafeText.member(path, key) }

  /// `v` checked against `shape`: the value with every member that has a problem left out (an
  /// array item with a problem becomes `null`), or nil when `v` itself is not of the shape.
  /// A missing required member is a problem, but the object is kept without it.
  public func check(_ v: JSONValue, _ shape: Shape, _ path: @autoclosure () -> String) -> JSONValue? {
    switch shape {
    case .any(let what):
      // Any value, within the nesting a line can carry it at (JSONText.maxValueNesting).
      let nesting = v.nesting
      guard nesting <= JSONText.maxValueNesting else {
        problem(
          path(), expected: "\(what) nesting at most \(JSONText.maxValueNesting) arrays or objects deep",
          found: "\(nesting) deep")
        return nil
      }
      return v
    case .bool:
      guard case .bool = v else { return mismatch(v, shape, path()) }
      return v
    case .string(let s): return checkString(v, s, path())
    case .integer(let min, let max):
      guard let i = v.intValue, let n = Int(exactly: i), n >= min, n <= max else { return mismatch(v, shape, path()) }
      return .int(Int64(n))
    case .number(let min, let max, _):
      guard let d = v.doubleValue, d.isFinite, d >= min, d <= max else { return mismatch(v, shape, path()) }
      return .double(d + 0)  // -0 becomes 0
    case .array(let a): return checkArray(v, a, path())
    case .object(let o): return checkObject(v, o, path(), variant: nil)
    case .map(let values, _):
      guard case .object(let members) = v else { return mismatch(v, shape, path()) }
      var kept: [String: JSONValue] = [:]
      for key in members.keys.sorted() {
        if let member = members[key], let ok = check(member, values, self.at(path(), key)) { kept[key] = ok }
      }
      return .object(kept)
    case .variant(let variant): return checkVariant(v, variant, path())
    case .either(let member, let present, let absent, _):
      guard case .object(let members) = v else { return mismatch(v, shape, path()) }
      return check(v, members[member] == nil ? absent : present, path())
    case .named(_, let inner): return check(v, inner, path())
    case .orNull(let inner):
      if case .null = v { return v }
      switch inner {
      case .bool, .string, .integer, .number, .any:
        // A scalar: one problem, saying null would do too.
        let probe = FormatChecker(file: file)
        guard let ok = probe.check(v, inner, path()), !probe.hasProblems else { return mismatch(v, shape, path()) }
        return ok
      default: return check(v, inner, path())
      }
    }
  }

  private func mismatch(_ v: JSONValue, _ shape: Shape, _ path: @autoclosure () -> String) -> JSONValue? {
    problem(path(), expected: shape.expected, found: found(v))
    return nil
  }

  private func checkString(_ v: JSONValue, _ s: StringShape, _ path: @autoclosure () -> String) -> JSONValue? {
    guard case .string(let text) = v else {
      problem(path(), expected: "a string", found: found(v))
      return nil
    }
    if let values = s.values {
      guard values.contains(text) else { return mismatch(v, .string(s), path()) }
      return v
    }
    if s.minLength != nil || s.maxLength != nil {
      let length = text.unicodeScalars.count
      if length < s.minLength ?? 0 || length > s.maxLength ?? .max {
        problem(path(), expected: s.expected, found: text.isEmpty ? "\"\"" : "\(length) characters")
        return nil
      }
    }
    if let format = s.format, !format.accepts(text) { return mismatch(v, .string(s), path()) }
    return v
  }

  private func checkArray(_ v: JSONValue, _ a: ArrayShape, _ path: @autoclosure () -> String) -> JSONValue? {
    guard case .array(let items) = v else { return mismatch(v, .array(a), path()) }
    if a.minItems == a.maxItems && items.count != a.minItems {
      problem(path(), expected: a.what, found: "\(items.count) items")
      return nil
    }
    if let max = a.maxItems, items.count > max {
      problem(path(), expected: "an array of at most \(max) \(a.nouns)", found: "\(items.count) items")
      return nil
    }
    if items.count < a.minItems {
      problem(
        path(), expected: a.minItems == 1 ? "at least one \(a.noun)" : "at least \(a.minItems) \(a.nouns)",
        found: items.isEmpty ? "an empty array" : "\(items.count) items")
      return nil
    }
    // Items of any value: checked one by one only when one nests too deep, to name it.
    if case .any = a.items, v.nesting <= JSONText.maxValueNesting + 1 { return v }
    var kept: [JSONValue] = []
    kept.reserveCapacity(items.count)
    for i in items.indices { kept.append(check(items[i], a.items, "\(path())[\(i)]") ?? .null) }
    return .array(kept)
  }

  /// An object; `variant` is the tag and value that chose it, for problems about members the
  /// variant does not take.
  private func checkObject(
    _ v: JSONValue, _ o: ObjectShape, _ path: @autoclosure () -> String, variant: (tag: String, value: String)?
  ) -> JSONValue? {
    guard case .object(let members) = v else { return mismatch(v, .object(o), path()) }
    var kept: [String: JSONValue] = [:]
    kept.reserveCapacity(members.count)
    var known = 0
    for field in o.fields {
      guard let member = members[field.name] else {
        if field.required { problem(at(path(), field.name), expected: field.shape.expected, found: "nothing") }
        continue
      }
      known += 1
      if let ok = check(member, field.shape, self.at(path(), field.name)) { kept[field.name] = ok }
    }
    if known < members.count && o.open {
      for (key, member) in members where o.field(key) == nil { kept[key] = member }
    } else if known < members.count {
      for key in members.keys.sorted() where o.field(key) == nil {
        problem(
          at(path(), key),
          expected: variant.map { variant in
            "only \(o.fields.map(\.name).sorted().joined(separator: ", ")) with \(variant.tag) \"\(variant.value)\""
          } ?? "one of the members \(o.fields.map(\.name).sorted().joined(separator: ", "))",
          found: "an unknown member")
      }
    }
    for group in o.atLeastOne where !group.contains(where: { members[$0] != nil }) {
      problem(path(), expected: group.map { "\"\($0)\"" }.joined(separator: " or "), found: "neither")
    }
    for group in o.atMostOne where group.members.filter({ members[$0] != nil }).count > 1 {
      problem(path(), expected: group.what, found: group.members.count == 2 ? "both" : "several")
    }
    return .object(kept)
  }

  private func checkVariant(_ v: JSONValue, _ variant: VariantShape, _ path: @autoclosure () -> String) -> JSONValue? {
    guard case .object(let members) = v else { return mismatch(v, .variant(variant), path()) }
    let value: String
    switch members[variant.tag] {
    case .string(let s)?: value = s
    case nil where variant.defaultTag != nil: value = variant.defaultTag ?? ""
    case let other:
      problem(
        at(path(), variant.tag), expected: other == nil ? StringShape.choice(variant.tagValues) : "a string",
        found: found(other))
      unknownMembers(members, variant, path())
      return nil
    }
    guard let shape = variant.shape(for: value) else {
      problem(at(path(), variant.tag), expected: StringShape.choice(variant.tagValues), found: found(.string(value)))
      unknownMembers(members, variant, path())
      return nil
    }
    switch shape {
    case .object(let o): return checkObject(v, o, path(), variant: (variant.tag, value))
    case .named(_, .object(let o)): return checkObject(v, o, path(), variant: (variant.tag, value))
    default: return check(v, shape, path())
    }
  }

  /// Members no variant takes, when the tag does not say which variant applies.
  private func unknownMembers(
    _ members: [String: JSONValue], _ variant: VariantShape, _ path: @autoclosure () -> String
  ) {
    for key in members.keys.sorted() where !variant.memberNames.contains(key) {
      problem(
        at(path(), key), expected: "one of the members \(variant.memberNames.sorted().joined(separator: ", "))",
        found: "an unknown member")
    }
  }
}

// MARK: - Writing the JSON Schema

/// JSON with its members in a set order, for the schema's text.
public indirect enum SchemaJSON: Sendable, ExpressibleByStringLiteral {
  case string(String)
  case int(Int)
  case number(Double)
  case bool(Bool)
  case array([SchemaJSON])
  case object([(String, SchemaJSON)])

  public init(stringLiteral value: String) { self = .string(value) }

  /// A JSON value of the model, its object members sorted.
  public init(_ value: JSONValue) {
    switch value {
    case .null: self = .object([])  // not used: no default is null
    case .bool(let b): self = .bool(b)
    case .int(let i): self = .int(Int(i))
    case .double(let d): self = .number(d)
    case .string(let s): self = .string(s)
    case .array(let a): self = .array(a.map(SchemaJSON.init))
    case .object(let o): self = .object(o.keys.sorted().compactMap { k in o[k].map { (k, SchemaJSON($0)) } })
    }
  }

  /// Pretty-printed with two spaces, as the committed file is.
  public func text(indent: String = "") -> String {
    let inner = indent + "  "
    switch self {
    case .string(let s): return Self.quote(s)
    case .int(let i): return String(i)
    case .number(let d): return FormatChecker.format(d)
    case .bool(let b): return String(b)
    case .array(let items):
      if items.isEmpty { return "[]" }
      return "[\n" + items.map { inner + $0.text(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
    case .object(let members):
      if members.isEmpty { return "{}" }
      return "{\n"
        + members.map { inner + Self.quote($0.0) + ": " + $0.1.text(indent: inner) }.joined(separator: ",\n")
        + "\n\(indent)}"
    }
  }

  static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          out += SafeText.escaped(scalar)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}

/// Writes the JSON Schema (draft 2020-12) of a shape.
public struct SchemaWriter {
  private var defs: [(String, SchemaJSON)] = []
  private var defined: Set<String> = []

  public init() {}

  /// The schema document: `header` members, then the root shape's, then `$defs`.
  public mutating func document(_ root: Shape, header: [(String, SchemaJSON)]) -> SchemaJSON {
    guard case .object(let members) = schema(root) else { return .object(header) }
    return .object(header + members + (defs.isEmpty ? [] : [("$defs", .object(defs))]))
  }

  /// A document of several named shapes: `header` members, then `body`, then `$defs` holding
  /// each of `shapes` under its name, and every shape they use.
  public mutating func document(
    defining shapes: [(String, Shape)], header: [(String, SchemaJSON)], body: [(String, SchemaJSON)]
  ) -> SchemaJSON {
    for (name, shape) in shapes { _ = schema(.named(name, shape)) }
    return .object(header + body + [("$defs", .object(defs))])
  }

  /// The schema of `shape`, with `doc` and `default` when given.
  mutating func schema(_ shape: Shape, doc: String? = nil, default value: JSONValue? = nil) -> SchemaJSON {
    var out: [(String, SchemaJSON)] = []
    switch shape {
    case .any: break
    case .bool: out.append(("type", "boolean"))
    case .string(let s):
      if let format = s.format {
        define(format.name) { _ in
          .object([("description", .string(format.doc)), ("type", "string"), ("pattern", .string(format.pattern))])
        }
        out.append(("$ref", .string("#/$defs/\(format.name)")))
      } else {
        out.append(("type", "string"))
      }
      if let values = s.values {
        out.append(values.count == 1 ? ("const", .string(values[0])) : ("enum", .array(values.map { .string($0) })))
      }
      if let min = s.minLength { out.append(("minLength", .int(min))) }
      if let max = s.maxLength { out.append(("maxLength", .int(max))) }
    case .integer(let min, let max):
      out += [("type", "integer"), ("minimum", .int(min)), ("maximum", .int(max))]
    case .number(let min, let max, _):
      out += [("type", "number"), ("minimum", .number(min)), ("maximum", .number(max))]
    case .array(let a):
      out.append(("type", "array"))
      if case .any = a.items {} else { out.append(("items", schema(a.items))) }
      if a.minItems > 0 { out.append(("minItems", .int(a.minItems))) }
      if let max = a.maxItems { out.append(("maxItems", .int(max))) }
    case .object(let o): out += objectSchema(o, variant: nil)
    case .map(let values, _):
      out += [("type", "object"), ("additionalProperties", schema(values))]
    case .variant(let v): out += variantSchema(v)
    case .either(let member, let present, let absent, _):
      out += [
        ("type", "object"), ("if", .object([("required", .array([.string(member)]))])), ("then", schema(present)),
        ("else", schema(absent)),
      ]
    case .named(let name, let inner):
      define(name) { writer in writer.schema(inner) }
      out.append(("$ref", .string("#/$defs/\(name)")))
    case .orNull(let inner):
      out.append(("anyOf", .array([schema(inner), .object([("type", "null")])])))
    }
    if let doc { out.append(("description", .string(doc))) }
    if let value { out.append(("default", SchemaJSON(value))) }
    return .object(out)
  }

  private mutating func define(_ name: String, _ make: (inout SchemaWriter) -> SchemaJSON) {
    guard defined.insert(name).inserted else { return }
    let index = defs.count
    defs.append((name, .object([])))
    defs[index].1 = make(&self)
  }

  private mutating func objectSchema(_ o: ObjectShape, variant: (tag: String, values: [String])?) -> [(
    String, SchemaJSON
  )] {
    var out: [(String, SchemaJSON)] = [("description", .string(o.doc)), ("type", "object")]
    let required = o.fields.filter(\.required).map { SchemaJSON.string($0.name) }
    if !required.isEmpty { out.append(("required", .array(required))) }
    if !o.open { out.append(("additionalProperties", .bool(false))) }
    var properties: [(String, SchemaJSON)] = []
    for field in o.fields {
      if let variant, field.name == variant.tag {
        let values = variant.values.map { SchemaJSON.string($0) }
        properties.append(
          (field.name, .object([values.count == 1 ? ("const", values[0]) : ("enum", .array(values))])))
      } else {
        properties.append((field.name, schema(field.shape, doc: field.doc, default: field.defaultValue)))
      }
    }
    out.append(("properties", .object(properties)))
    let some = o.atLeastOne.map { group in
      SchemaJSON.object([
        ("anyOf", .array(group.map { .object([("required", .array([.string($0)]))]) }))
      ])
    }
    let exclusive = o.atMostOne.map { group in
      SchemaJSON.object([("not", .object([("required", .array(group.members.map { .string($0) }))]))])
    }
    let rules = some + exclusive + o.schemaRules
    if rules.count == 1, case .object(let only) = rules[0] {
      out += only
    } else if !rules.isEmpty {
      out.append(("allOf", .array(rules)))
    }
    return out
  }

  private mutating func variantSchema(_ v: VariantShape) -> [(String, SchemaJSON)] {
    var out: [(String, SchemaJSON)] = [("description", .string(v.doc)), ("type", "object")]
    if v.defaultTag == nil { out.append(("required", .array([.string(v.tag)]))) }
    var tag: [(String, SchemaJSON)] = [("enum", .array(v.tagValues.map { .string($0) }))]
    if let d = v.defaultTag { tag.append(("default", .string(d))) }
    out.append(("properties", .object([(v.tag, .object(tag))])))
    var branches: [SchemaJSON] = []
    for c in v.cases {
      let values = c.values.map { SchemaJSON.string($0) }
      let test: SchemaJSON = .object([values.count == 1 ? ("const", values[0]) : ("enum", .array(values))])
      // The default case also applies when the tag is absent: no `required` in its test.
      let applies = c.values.contains { $0 == v.defaultTag }
      var condition: [(String, SchemaJSON)] = []
      if !applies { condition.append(("required", .array([.string(v.tag)]))) }
      condition.append(("properties", .object([(v.tag, test)])))
      let then: SchemaJSON
      switch c.shape {
      case .object(let o): then = .object(objectSchema(o, variant: (v.tag, c.values)))
      default: then = schema(c.shape)
      }
      branches.append(.object([("if", .object(condition)), ("then", then)]))
    }
    out.append(("allOf", .array(branches)))
    return out
  }
}
