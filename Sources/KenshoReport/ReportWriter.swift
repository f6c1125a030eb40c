public import Foundation

/// The report formats `--format` chooses from.
public enum ReportFormat: String, Sendable, CaseIterable {
  case json, html, junit
}

/// Writes a run's reports into a folder, each file atomically: `kensho-report.json`,
/// `kensho-report.html`, `kensho-junit.xml`, and the latency histograms in
/// `hgrm/<scenario>.<histogram>.hgrm`.
public enum ReportWriter {
  /// Writes the chosen formats; returns the paths written.
  @discardableResult
  public static func write(_ report: RunReport, formats: Set<ReportFormat>, to folder: URL) throws -> [String] {
    var written: [String] = []
    func put(_ data: Data, _ name: String) throws {
      let url = folder.appendingPathComponent(name)
      try AtomicFile.write(data, to: url)
      written.append(url.path)
    }
    if formats.contains(.json) {
      try put(try report.json(), "kensho-report.json")
      for scenario in report.scenarios {
        for (name, text) in scenario.histograms.sorted(by: { $0.key < $1.key }) {
          try put(Data(text.utf8), "hgrm/\(fileName(scenario.name)).\(name).hgrm")
        }
      }
    }
    if formats.contains(.html) { try put(Data(HTMLReport.render(report).utf8), "kensho-report.html") }
    if formats.contains(.junit) { try put(Data(JUnitReport.render(report).utf8), "kensho-junit.xml") }
    return written
  }

  /// A scenario name as part of a file name: letters, digits, `-` and `_`, at most 100 bytes of
  /// UTF-8 (with the histogram's name the whole stays under the usual 255).
  static func fileName(_ name: String) -> String {
    var out = ""
    for c in name {
      let kept: Character = c.isLetter || c.isNumber || c == "-" || c == "_" ? c : "_"
      if out.utf8.count + kept.utf8.count > 100 { break }
      out.append(kept)
    }
    return out.isEmpty ? "_" : out
  }
}
