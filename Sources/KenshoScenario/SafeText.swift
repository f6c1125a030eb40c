/// Text from files, command lines and implementations made safe to print to a terminal.
///
/// A scenario's member names and strings, a file name, or what an implementation sent can hold
/// newlines (a fake `error:` line), terminal escape sequences (colours, cursor moves, window
/// titles), bidirectional overrides that make text read differently than it is, or characters
/// that are not characters. Every such character is written as a JSON escape instead: `\n`,
/// `\r`, `\t`, `\u001B`, `\u202E`.
public enum SafeText {
  /// Whether `scalar` must be escaped: C0 controls, DEL, C1 controls, Unicode format
  /// characters (bidirectional controls, zero-width characters, the BOM), line and paragraph
  /// separators, private-use and unassigned code points, and noncharacters (U+FFFE, U+FFFF, …).
  public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    let v = scalar.value
    if v < 0x20 || (0x7F...0x9F).contains(v) { return true }
    if v < 0x7F { return false }
    if (0xFDD0...0xFDEF).contains(v) || v & 0xFFFE == 0xFFFE { return true }
    switch scalar.properties.generalCategory {
    case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned: return true
    default: return false
    }
  }

  /// `text` with every character of ``needsEscape(_:)`` escaped; with `keepingNewlines`, line
  /// feeds stay (for messages of several lines composed by the tool itself).
  public static func escape(_ text: String, keepingNewlines: Bool = false) -> String {
    guard text.unicodeScalars.contains(where: needsEscape) else { return text }
    var out = ""
    out.reserveCapacity(text.utf8.count + 8)
    for scalar in text.unicodeScalars {
      if scalar == "\n" && keepingNewlines {
        out.unicodeScalars.append(scalar)
      } else if needsEscape(scalar) {
        out += escaped(scalar)
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return out
  }

  /// `text` as a JSON string literal, quotes included, cut after `limit` characters with `…`
  /// (inside the quotes).
  public static func quoted(_ text: String, limit: Int = 40) -> String {
    var out = "\""
    var count = 0
    for character in text {
      if count == limit {
        out += "…"
        break
      }
      count += 1
      for scalar in character.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default: out += needsEscape(scalar) ? escaped(scalar) : String(scalar)
        }
      }
    }
    return out + "\""
  }

  /// The JSON path of member `key` of the value at `path`: `$.agents` for a plain name,
  /// `$["odd key"]` (a JSON string, escaped and cut at 64 characters) for any other.
  public static func member(_ path: String, _ key: String) -> String {
    let plain =
      !key.isEmpty && key.utf8.count <= 64
      && key.utf8.allSatisfy { b in
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D
          || b == 0x24
      }
    return plain ? "\(path).\(key)" : "\(path)[\(quoted(key, limit: 64))]"
  }

  static func escaped(_ scalar: Unicode.Scalar) -> String {
    switch scalar {
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    default:
      // Beyond the BMP: a surrogate pair, as JSON writes it.
      if scalar.value > 0xFFFF {
        let v = scalar.value - 0x10000
        return hex(0xD800 + (v >> 10)) + hex(0xDC00 + (v & 0x3FF))
      }
      return hex(scalar.value)
    }
  }

  private static func hex(_ v: UInt32) -> String {
    let digits = Array("0123456789ABCDEF")
    var out = "\\u"
    for shift in stride(from: 12, through: 0, by: -4) { out.append(digits[Int((v >> UInt32(shift)) & 0xF)]) }
    return out
  }
}
