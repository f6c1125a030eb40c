import Foundation
import Testing

/// The relay across hosts: Tests/netns/relay-across-hosts.sh puts the Swift relay in one
/// network namespace, a producer agent in a second and a consumer agent in a third (no route
/// between them but through the relay), then runs relay-streams from the second namespace.
@Suite("Across hosts (network namespaces)")
struct AcrossHostsTests {
  static let script = packageRoot.appendingPathComponent("Tests/netns/relay-across-hosts.sh").path

  @Test("KSP-11 across hosts: a stream crosses three namespaces through the relay, and relay-streams passes")
  func acrossNamespaces() throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [Self.script]
    var environment = ProcessInfo.processInfo.environment
    environment["KENSHO_BENCH"] = builtProduct("kensho-bench")
    process.environment = environment
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    // The script bounds itself (150 s); read until it closes its output.
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus == 77 {
      // Namespaces cannot be made here (not root, no iproute2): say why, do not pretend.
      print("AcrossHostsTests skipped: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
      withKnownIssue("network namespaces unavailable: \(text.suffix(200))", isIntermittent: true) {
        Issue.record("skipped")
      }
      return
    }
    #expect(process.terminationStatus == 0, "\(text.suffix(3000))")
    #expect(text.contains("PASS:"), "\(text.suffix(3000))")
  }
}
