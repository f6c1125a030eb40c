import Foundation
import KenshoProtocol
import Testing

/// `KSPRule.all` is the spec's rule list as code: ids and levels must match PROTOCOL.md.
@Suite("KSPRule.all agrees with PROTOCOL.md")
struct RuleCatalogueTests {
  /// ../shared/PROTOCOL.md beside the package, or `KENSHO_PROTOCOL_MD`.
  static let spec: URL? = {
    if let path = ProcessInfo.processInfo.environment["KENSHO_PROTOCOL_MD"] { return URL(fileURLWithPath: path) }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let url = root.deletingLastPathComponent().appendingPathComponent("shared/PROTOCOL.md")
    return FileManager.default.fileExists(atPath: url.path) ? url : nil
  }()

  @Test(
    "every rule of PROTOCOL.md is in KSPRule.all with its level, in document order, and no other",
    .enabled(if: spec != nil, "PROTOCOL.md not found beside the package (set KENSHO_PROTOCOL_MD)"))
  func rulesMatchTheSpec() throws {
    let text = try String(contentsOf: try #require(Self.spec), encoding: .utf8)
    let pattern = try Regex(#"^- \*\*(KSP-\d+\.\d+)\*\* \((MUST|SHOULD)\)"#).anchorsMatchLineEndings()
    let inSpec = text.matches(of: pattern).map { m in
      "\(m.output[1].substring ?? "") \(m.output[2].substring ?? "")"
    }
    #expect(inSpec.count > 30, "the pattern no longer finds the rules")
    let inCode = KSPRule.all.map { "\($0.id) \($0.level.rawValue)" }
    #expect(inCode == inSpec)
  }
}
