import Foundation
import KenshoScenario
import Testing

@Suite("Text from files is escaped before it reaches a terminal")
struct EscapingTests {
  @Test("control characters, escape sequences, bidi overrides and noncharacters are escaped; the rest is kept")
  func escape() {
    #expect(SafeText.escape("plain: ÄÖ 日本 🙂 é") == "plain: ÄÖ 日本 🙂 é")
    #expect(SafeText.escape("a\nb\rc\td") == "a\\nb\\rc\\td")
    #expect(SafeText.escape("\u{1B}[31mred\u{1B}[0m") == "\\u001B[31mred\\u001B[0m")
    #expect(SafeText.escape("\u{0}\u{7F}\u{85}\u{9B}") == "\\u0000\\u007F\\u0085\\u009B")
    #expect(SafeText.escape("\u{202E}evil\u{2066}") == "\\u202Eevil\\u2066")
    #expect(SafeText.escape("\u{2028}\u{FEFF}\u{200B}") == "\\u2028\\uFEFF\\u200B")
    let fdd0 = Unicode.Scalar(0xFDD0).map { String($0) } ?? ""  // a noncharacter no literal may hold
    #expect(SafeText.escape("\u{FFFE}\u{FFFF}\(fdd0)\u{10FFFF}") == "\\uFFFE\\uFFFF\\uFDD0\\uDBFF\\uDFFF")
    #expect(SafeText.escape("one\ntwo\u{1B}", keepingNewlines: true) == "one\ntwo\\u001B")
  }

  @Test("quoted strings are JSON string literals, cut at the limit; odd member names use bracket notation")
  func quotedAndMembers() {
    #expect(SafeText.quoted("say \"hi\" \\ \n") == "\"say \\\"hi\\\" \\\\ \\n\"")
    #expect(SafeText.quoted(String(repeating: "x", count: 50), limit: 4) == "\"xxxx…\"")
    #expect(SafeText.member("$", "agents") == "$.agents")
    #expect(SafeText.member("$.m", "stream-x_1") == "$.m.stream-x_1")
    #expect(SafeText.member("$.m", "a b") == "$.m[\"a b\"]")
    #expect(SafeText.member("$.m", "") == "$.m[\"\"]")
    #expect(SafeText.member("$.m", "x\n\u{1B}[2J") == "$.m[\"x\\n\\u001B[2J\"]")
    #expect(SafeText.member("$.m", "a.b[0]") == "$.m[\"a.b[0]\"]")
  }

  @Test("a member name or value cannot forge a line: each problem is one line starting with its file")
  func problemsStayOnOneLine() throws {
    let forged = "x\nerror: /etc/passwd: expected nothing, found nothing"
    let json = try JSONSerialization.data(withJSONObject: [
      "format": "kensho-scenario/1", "name": "e",
      "agents": [
        ["name": "p\u{1B}]0;pwned\u{7}", "methods": [forged: ["chunks": "\u{1B}[2J\u{9B}"]]], ["name": "c"],
      ],
      "workload": [["consumers": "c", "producers": "p", "method": forged]],
      "expect": [["check": "ordered_delivery"]],
      forged: 1, "\u{202E}": 2,
    ])
    do {
      _ = try ScenarioLoader.load(data: json, file: "evil\n\u{1B}[1m.json")
      Issue.record("the file loaded")
    } catch {
      let lines = error.description.split(separator: "\n", omittingEmptySubsequences: false)
      #expect(lines.count == error.problems.count)
      for line in lines {
        #expect(line.hasPrefix("evil\\n\\u001B[1m.json: $"), "\(line)")
        #expect(!line.unicodeScalars.contains(where: SafeText.needsEscape), "\(line)")
        #expect(!line.contains("\nerror: /etc/passwd"))
      }
      let paths = Set(error.problems.map(\.path))
      #expect(paths.contains("$[\"x\\nerror: /etc/passwd: expected nothing, found nothing\"]"), "\(paths)")
      #expect(paths.contains("$[\"\\u202E\"]"), "\(paths)")
      let chunks = error.problems.first { $0.path.hasSuffix(".chunks") }
      #expect(chunks?.found == "\"\\u001B[2J\\u009B\"")
      let name = error.problems.first { $0.path == "$.agents[0].name" }
      #expect(name?.found == "\"p\\u001B]0;pwned\\u0007\"", "\(error.problems)")
    }
  }
}
