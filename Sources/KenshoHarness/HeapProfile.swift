import Foundation
import KenshoMemory

/// jemalloc heap profiles, for a failed leak verdict.
enum HeapProfile {
  /// Writes a heap profile when jemalloc profiling is on (`MALLOC_CONF=prof:true`) and returns
  /// the `jeprof` command that shows where the retained bytes were allocated; otherwise says
  /// how to turn profiling on.
  static func dump(scenario: String, into directory: String?) -> String {
    guard Jemalloc.isProfiling else {
      return "heap profiling is off: run again with MALLOC_CONF=prof:true (a jemalloc built with --enable-prof) "
        + "to get a heap profile of the retained bytes"
    }
    let folder = directory ?? FileManager.default.temporaryDirectory.path
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let safe = scenario.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }
    let path = (folder as NSString).appendingPathComponent("\(String(safe)).heap")
    guard Jemalloc.dumpProfile(to: path) else { return "jemalloc could not write a heap profile to \(path)" }
    let executable = CommandLine.arguments.first ?? "kensho-bench"
    return "jeprof --show_bytes --text \(executable) \(path)"
  }
}
