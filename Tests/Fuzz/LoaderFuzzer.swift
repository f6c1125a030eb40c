// libFuzzer target for the scenario loader: `.ci/fuzz-loader` builds and runs it.
//
// Not part of the package (SwiftPM does not see this folder): it is compiled with
// `swiftc -sanitize=fuzzer,address` against KenshoProtocol and KenshoScenario. The oracle is
// the loader's contract: it returns or throws ScenarioLoadError, never traps; every problem
// names the file and a JSON path on one escaped line; what loads keeps to ScenarioLimits. A
// broken contract aborts, which libFuzzer reports as a crash with the input that caused it.

import Foundation
import KenshoProtocol
import KenshoScenario

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzScenarioLoader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let file = "fuzz.json"
  do {
    let scenario = try ScenarioLoader.load(data: Data(bytes: data, count: size), file: file)
    let f = scenario.footprint
    let times =
      [scenario.time.deadlineMs, scenario.time.sampleEveryMs, scenario.time.streamTimeoutMs ?? 0]
      + scenario.workload.flatMap { [$0.startMs, $0.timeoutMs ?? 0] }
      + scenario.agents.flatMap { a in [a.processingMs] + a.methods.values.map(\.intervalMs) }
      + scenario.actions.map(\.atMs)
    if f.workers > ScenarioLimits.maxWorkers || f.streams > ScenarioLimits.maxStreams
      || f.chunks > ScenarioLimits.maxTotalChunks || times.contains(where: { Nanos.exactly(ms: $0) == nil })
    {
      broken("loaded out of bounds: \(f)")
    }
  } catch {
    if error.problems.isEmpty { broken("rejected without a problem") }
    for p in error.problems {
      let line = p.description
      if p.file != file || !p.path.hasPrefix("$") || !line.hasPrefix("\(file): $")
        || line.unicodeScalars.contains(where: SafeText.needsEscape)
      {
        broken("bad problem: \(SafeText.escape(line))")
      }
    }
  }
  return 0
}

func broken(_ message: String) -> Never {
  FileHandle.standardError.write(Data("fuzz-loader: \(message)\n".utf8))
  abort()
}
