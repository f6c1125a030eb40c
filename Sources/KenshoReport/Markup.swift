/// A small tree of HTML or SVG, rendered with every text and attribute value escaped.
///
/// (Plot, the HTML package at hand, writes attribute values unescaped and lets entity-like
/// text through; a report that shows what an implementation sent cannot use it.)
public indirect enum Markup: Sendable {
  case element(String, [(String, String)], [Markup])
  case text(String)
  case group([Markup])
  /// Text written as it is: only for constants of this module (the stylesheet), never for
  /// anything that came from a run.
  case constant(StaticString)

  /// An element; `attributes` in the order given.
  public static func el(_ name: String, _ attributes: [(String, String)] = [], _ children: [Markup] = []) -> Markup {
    .element(name, attributes, children)
  }

  public static func el(_ name: String, _ attributes: [(String, String)] = [], text: String) -> Markup {
    .element(name, attributes, [.text(text)])
  }

  private static let void: Set = ["meta", "br", "hr", "img", "input", "link"]
  private static let selfClosing: Set = ["polyline", "line", "rect", "circle", "path", "polygon"]

  public func render() -> String {
    var out = ""
    render(into: &out)
    return out
  }

  public func render(into out: inout String) {
    switch self {
    case .text(let s): out += Markup.escape(s)
    case .constant(let s): out += s.description
    case .group(let nodes): for n in nodes { n.render(into: &out) }
    case .element(let name, let attributes, let children):
      out += "<" + name
      for (key, value) in attributes { out += " \(key)=\"\(Markup.escape(value))\"" }
      if Markup.void.contains(name) {
        out += ">"
        return
      }
      if children.isEmpty && Markup.selfClosing.contains(name) {
        out += "/>"
        return
      }
      out += ">"
      for c in children { c.render(into: &out) }
      out += "</\(name)>"
    }
  }

  /// Escapes `& < > " '`, so text and attribute values can hold anything.
  public static func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for ch in s.unicodeScalars {
      switch ch {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default:
        // Control characters other than tab and newlines, and noncharacters, have no place in a
        // page (and the same text goes to XML, which forbids most of them).
        if !JUnitReport.isXMLChar(ch) || (0x7F...0x9F).contains(ch.value) || (0xFDD0...0xFDEF).contains(ch.value)
          || ch.value & 0xFFFE == 0xFFFE
        {
          out += "\u{FFFD}"
        } else {
          out.unicodeScalars.append(ch)
        }
      }
    }
    return out
  }
}
