import Foundation
import KenshoScenario
import Testing

/// The root of the package, from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

/// A python3 on PATH that has `jsonschema`, if any; tests that need it are skipped (and say why)
/// without one.
let pythonWithJSONSchema: String? = {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
  let candidates = path.split(separator: ":").map { "\($0)/python3" } + ["/root/.pyenv/shims/python3"]
  return candidates.first { candidate in
    guard FileManager.default.isExecutableFile(atPath: candidate) else { return false }
    let probe = Process()
    probe.executableURL = URL(fileURLWithPath: candidate)
    probe.arguments = ["-c", "import jsonschema"]
    probe.standardError = FileHandle.nullDevice
    guard (try? probe.run()) != nil else { return false }
    probe.waitUntilExit()
    return probe.terminationStatus == 0
  }
}()

/// Runs `script` with python and `arguments`, feeding `input`; its exit status and output.
func runPython(_ script: String, _ arguments: [String], input: Data = Data()) throws -> (status: Int32, output: String)
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try #require(pythonWithJSONSchema))
  process.arguments = ["-c", script] + arguments
  let stdin = Pipe()
  let stdout = Pipe()
  process.standardInput = stdin
  process.standardOutput = stdout
  try process.run()
  try stdin.fileHandleForWriting.write(contentsOf: input)
  try stdin.fileHandleForWriting.close()
  let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  process.waitUntilExit()
  return (process.terminationStatus, output)
}

@Suite("Invalid scenarios: rejected by the loader, and by a JSON Schema validator where a schema can say so")
struct InvalidScenarioTests {
  static let folder = packageRoot.appendingPathComponent("Tests/Fixtures/invalid-scenarios")

  /// One invalid file and how it must be rejected (see the folder's README).
  struct Fixture: CustomTestStringConvertible, Sendable {
    var name: String
    var text: Data
    /// The path a schema validator must report, or nil when the schema must accept the file.
    var schemaPath: String?
    var problems: [String]
    var testDescription: String { name }
  }

  static let fixtures: [Fixture] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.sorted().map { file in
      let name = String(file.dropLast(".json".count))
      let text = (try? Data(contentsOf: folder.appendingPathComponent(file))) ?? Data()
      let expected =
        (try? String(contentsOf: folder.appendingPathComponent("\(name).expected"), encoding: .utf8)) ?? ""
      var schemaPath: String?
      var problems: [String] = []
      for line in expected.split(separator: "\n") where !line.hasPrefix("#") {
        if line.hasPrefix("schema: ") {
          let value = line.dropFirst("schema: ".count)
          schemaPath = value.hasPrefix("$") ? String(value) : nil
        } else {
          problems.append(String(line))
        }
      }
      return Fixture(name: name, text: text, schemaPath: schemaPath, problems: problems)
    }
  }()

  @Test("at least 30 cases, each with its expected problems and what the schema must say")
  func everyCaseIsComplete() throws {
    #expect(Self.fixtures.count >= 30, "\(Self.fixtures.count) cases in \(Self.folder.path)")
    let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path)
    for f in Self.fixtures {
      #expect(files.contains("\(f.name).expected"), "\(f.name).json has no .expected")
      #expect(!f.problems.isEmpty, "\(f.name).expected lists no problem")
    }
    for file in files where file.hasSuffix(".expected") {
      #expect(files.contains(file.replacing(".expected", with: ".json")), "\(file) has no .json")
    }
    let inCode = Self.fixtures.filter { $0.schemaPath == nil }.count
    #expect(inCode >= ScenarioFormat.codeRules.count, "each rule checked in code has a case")
    #expect(Self.fixtures.count - inCode >= 30, "the schema's rules have cases")
  }

  @Test("the loader reports exactly the expected problems", arguments: fixtures)
  func loaderRejects(_ f: Fixture) {
    do {
      _ = try ScenarioLoader.load(data: f.text, file: "\(f.name).json")
      Issue.record("\(f.name).json loaded")
    } catch {
      #expect(error.problems.map(\.description) == f.problems)
      if let path = f.schemaPath {
        #expect(error.problems.map(\.path).contains(path), "the loader reports \(path) as the schema does")
      }
    }
  }

  /// Reads a manifest `[{"file", "path"}]` on stdin and checks each file against the schema
  /// (argv[1]): rejected with an error at `path`, or accepted when `path` is null. Errors at a
  /// member that is missing or unknown are placed at that member, as the loader reports them.
  static let checker = """
    import json, re, sys
    import jsonschema
    schema = json.load(open(sys.argv[1]))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    def member(path, key):
        plain = key != "" and len(key.encode()) <= 64 and re.fullmatch(r"[A-Za-z0-9_$-]+", key)
        return path + "." + key if plain else path + "[" + json.dumps(key) + "]"
    def paths(error):
        path = "$"
        for part in error.absolute_path:
            path = path + "[%d]" % part if isinstance(part, int) else member(path, part)
        found = []
        if error.validator == "required":
            found += [member(path, m) for m in re.findall(r"^'(.*)' is a required property$", error.message)]
        elif error.validator == "additionalProperties":
            names = re.search(r"\\((.*) (?:was|were) unexpected\\)", error.message)
            found += [member(path, n) for n in re.findall(r"'((?:[^'\\\\]|\\\\.)*)'", names.group(1))] if names else []
        found.append(path)
        for sub in error.context or []:
            found += paths(sub)
        return found
    failures = 0
    for case in json.load(sys.stdin):
        errors = list(validator.iter_errors(json.load(open(case["file"]))))
        reported = sorted(set(p for e in errors for p in paths(e)))
        if case["path"] is None and errors:
            failures += 1
            print("%s: the schema rejects it (%s), but the rule is said to be checked in code only" % (case["file"], errors[0].message[:200]))
        elif case["path"] is not None and case["path"] not in reported:
            failures += 1
            print("%s: the schema reports %s, not %s" % (case["file"], reported or "nothing", case["path"]))
    sys.exit(1 if failures else 0)
    """

  @Test(
    "a JSON Schema validator rejects each case at the loader's path, and accepts those only code can judge",
    .enabled(if: pythonWithJSONSchema != nil, "needs python3 with the jsonschema package"))
  func schemaRejects() throws {
    let schema = FileManager.default.temporaryDirectory.appendingPathComponent(
      "kensho-schema-\(UUID().uuidString).json")
    try Data(ScenarioSchema.text.utf8).write(to: schema)
    defer { try? FileManager.default.removeItem(at: schema) }
    let manifest: [[String: Any]] = Self.fixtures.map { f in
      ["file": Self.folder.appendingPathComponent("\(f.name).json").path, "path": f.schemaPath ?? NSNull()]
    }
    let run = try runPython(Self.checker, [schema.path], input: try JSONSerialization.data(withJSONObject: manifest))
    #expect(run.status == 0, "\(run.output)")
  }
}
