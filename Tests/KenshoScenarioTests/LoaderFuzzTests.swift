import Foundation
import KenshoProtocol
import KenshoScenario
import Testing

/// Seeded mutation fuzzing of the loader (``ScenarioMutator``). The run in `swift test` is short;
/// `.ci/fuzz-loader --mutants N` runs as many as asked (environment below).
///
/// - `KENSHO_FUZZ_MUTANTS`: mutants loaded in process (default 2000).
/// - `KENSHO_FUZZ_SEED`: the seed (default 14); a failure names the seed and the mutant's index.
/// - `KENSHO_FUZZ_CLI`: mutants also run through `kensho-bench validate` as a process (default 40).
@Suite("Scenario loading under fuzzing")
struct LoaderFuzzTests {
  static let environment = ProcessInfo.processInfo.environment
  static let mutants = environment["KENSHO_FUZZ_MUTANTS"].flatMap { Int($0) } ?? 2_000
  static let seed = environment["KENSHO_FUZZ_SEED"].flatMap { UInt64($0) } ?? 14
  static let processes = environment["KENSHO_FUZZ_CLI"].flatMap { Int($0) } ?? 40

  static let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Scenarios")

  @Test("mutated scenario files never trap the loader; every rejection names the file and a JSON path on one line")
  func mutantsNeverTrap() throws {
    var mutator = ScenarioMutator(corpus: try ScenarioMutator.corpus(Self.scenarios), seed: Self.seed)
    var accepted = 0
    var problems = 0
    let started = Date()
    for index in 0..<Self.mutants {
      let (source, text) = mutator.next()
      let file = "mutant-\(index)-of-\(source)"
      do {
        let scenario = try ScenarioLoader.load(data: Data(text), file: file)
        accepted += 1
        let wrong = Self.violations(scenario)
        #expect(wrong.isEmpty, "seed \(Self.seed) mutant \(index) loaded out of bounds: \(wrong)")
      } catch {
        problems += error.problems.count
        let wrong = Self.problemViolations(error, file: file)
        #expect(wrong.isEmpty, "seed \(Self.seed) mutant \(index): \(wrong)")
      }
    }
    let seconds = Date().timeIntervalSince(started)
    print(
      "fuzz: \(Self.mutants) mutants (seed \(Self.seed)) in \(String(format: "%.2f", seconds)) s, "
        + "\(Int(Double(Self.mutants) / max(seconds, 1e-9))) a second; \(accepted) accepted, "
        + "\(Self.mutants - accepted) rejected with \(problems) problems")
    #expect(accepted < Self.mutants, "the mutator must produce rejections")
  }

  @Test("mutated scenario files through `kensho-bench validate`: exit 0 or 2, never a signal")
  func mutantsThroughTheCommandLine() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kensho-fuzz-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    var mutator = ScenarioMutator(corpus: try ScenarioMutator.corpus(Self.scenarios), seed: Self.seed ^ 0xC11)
    let started = Date()
    var codes: [Int32: Int] = [:]
    for index in 0..<Self.processes {
      let file = folder.appendingPathComponent("mutant-\(index).json")
      try Data(mutator.next().text).write(to: file)
      let r = try Self.run(["validate", file.path])
      codes[r.status, default: 0] += 1
      #expect(r.reason == .exit, "mutant \(index) (seed \(Self.seed ^ 0xC11)) ended by signal \(r.status)")
      #expect(r.status == 0 || r.status == 2, "mutant \(index) exited \(r.status): \(r.stderr)")
      for line in r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        let location = line.dropFirst("error: \(file.path): ".count).prefix { $0 != ":" }
        #expect(line.hasPrefix("error: \(file.path): ") && Self.isLocation(location), "mutant \(index): \(line)")
        #expect(!line.unicodeScalars.contains(where: SafeText.needsEscape), "mutant \(index): \(line)")
      }
    }
    let seconds = Date().timeIntervalSince(started)
    print(
      "fuzz: \(Self.processes) mutants through kensho-bench validate in \(String(format: "%.2f", seconds)) s; "
        + "exit codes \(codes.sorted { $0.key < $1.key })")
  }

  /// What a rejection must look like.
  /// Where a problem is: a JSON path, or for text that is not JSON, its line and column.
  static func isLocation(_ text: some StringProtocol) -> Bool {
    if text.hasPrefix("$") { return true }
    let parts = text.split(separator: " ")
    return parts.count == 4 && parts[0] == "line" && parts[2] == "column"
      && parts[1].hasSuffix(",") && Int(parts[1].dropLast()).map { $0 >= 1 } == true
      && Int(parts[3]).map { $0 >= 1 } == true
  }

  static func problemViolations(_ error: ScenarioLoadError, file: String) -> [String] {
    var wrong: [String] = []
    if error.problems.isEmpty { wrong.append("no problem listed") }
    if error.problems.count > ScenarioLimits.maxProblems + 1 { wrong.append("\(error.problems.count) problems") }
    for p in error.problems {
      if p.file != file { wrong.append("file \(p.file)") }
      if !isLocation(p.path) { wrong.append("path \(p.path)") }
      if !p.description.hasPrefix("\(file): \(p.path): ") { wrong.append("description \(p.description)") }
      if p.description.unicodeScalars.contains(where: SafeText.needsEscape) {
        wrong.append("unescaped \(SafeText.escape(p.description))")
      }
    }
    return wrong
  }

  /// Values of a loaded scenario outside the stated limits.
  static func violations(_ s: Scenario) -> [String] {
    var wrong: [String] = []
    func time(_ what: String, _ v: Double?, min: Double = 0) {
      guard let v else { return }
      if !(v >= min && v <= ScenarioLimits.maxTimeMs) || Nanos.exactly(ms: v) == nil { wrong.append("\(what) \(v)") }
    }
    func count(_ what: String, _ v: Int?, _ range: ClosedRange<Int>) {
      if let v, !range.contains(v) { wrong.append("\(what) \(v)") }
    }
    time("streamTimeoutMs", s.time.streamTimeoutMs)
    time("sweepIntervalMs", s.time.sweepIntervalMs, min: 1)
    time("deadlineMs", s.time.deadlineMs, min: 1)
    time("sampleEveryMs", s.time.sampleEveryMs, min: 1)
    if s.time.deadlineMs / s.time.sampleEveryMs > ScenarioLimits.maxSamples { wrong.append("samples") }
    for a in s.agents {
      count("count", a.count, 1...ScenarioLimits.maxWorkers)
      time("processingMs", a.processingMs)
      for b in a.methods.values {
        count("chunks", b.chunks, 0...ScenarioLimits.maxChunks)
        time("intervalMs", b.intervalMs)
      }
    }
    for g in s.workload {
      count("streams", g.streams, 1...ScenarioLimits.maxStreams)
      count("concurrency", g.concurrency, 1...ScenarioLimits.maxStreams)
      count("cancelAfterChunks", g.cancelAfterChunks, 0...ScenarioLimits.maxChunks)
      count("creditWindow", g.creditWindow, 1...ScenarioLimits.maxCreditWindow)
      time("startMs", g.startMs)
      time("timeoutMs", g.timeoutMs)
      if let rate = g.ratePerSecond, !(0.001...ScenarioLimits.maxRatePerSecond).contains(rate) {
        wrong.append("rate \(rate)")
      }
    }
    for f in s.faults {
      count("nth", f.nth, 0...ScenarioLimits.maxChunks)
      time("fromMs", f.fromMs)
      time("untilMs", f.untilMs)
      switch f.kind {
      case .delay(.constant(let ms)), .delay(.exponential(let ms)), .forge(_, _, let ms): time("ms", ms)
      case .delay(.uniform(let lo, let hi)):
        time("minMs", lo)
        time("maxMs", hi)
      default: break
      }
    }
    for a in s.actions { time("atMs", a.atMs) }
    let footprint = s.footprint
    if footprint.workers > ScenarioLimits.maxWorkers { wrong.append("workers \(footprint.workers)") }
    if footprint.streams > ScenarioLimits.maxStreams { wrong.append("streams \(footprint.streams)") }
    if footprint.chunks > ScenarioLimits.maxTotalChunks { wrong.append("chunks \(footprint.chunks)") }
    return wrong
  }

  /// Runs the built `kensho-bench` (beside this test binary).
  static func run(_ arguments: [String]) throws -> (
    reason: Process.TerminationReason, status: Int32, stderr: String
  ) {
    var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("kensho-bench").path)
      && folder.path != "/"
    {
      folder = folder.deletingLastPathComponent()
    }
    let process = Process()
    process.executableURL = folder.appendingPathComponent("kensho-bench")
    process.arguments = arguments
    let err = Pipe()
    process.standardOutput = FileHandle.nullDevice
    process.standardError = err
    try process.run()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationReason, process.terminationStatus, String(decoding: stderr, as: UTF8.self))
  }
}
