/// The JSON Schema (draft 2020-12) of `kensho-scenario/1`, written from ``ScenarioFormat``.
///
/// The copy committed at `Sources/KenshoScenario/Resources/kensho-scenario-1.schema.json`, which
/// editors use through a scenario's `"$schema"`, must equal it; a test says so, and
/// `swift run kensho-bench schema > Sources/KenshoScenario/Resources/kensho-scenario-1.schema.json`
/// writes it again.
public enum ScenarioSchema {
  /// Where the committed copy lives, from the package's root.
  public static let committedPath = "Sources/KenshoScenario/Resources/kensho-scenario-1.schema.json"
  /// The command that writes the committed copy again.
  public static let regenerate = "swift run kensho-bench schema > \(committedPath)"

  /// The schema's text, ending with a newline.
  public static let text: String = {
    var writer = SchemaWriter()
    let document = writer.document(
      ScenarioFormat.scenario,
      header: [
        ("$schema", "https://json-schema.org/draft/2020-12/schema"),
        ("$id", "https://kensho-bench.invalid/schemas/kensho-scenario-1.schema.json"),
        ("title", .string("kensho-bench scenario (\(Scenario.format))")),
      ])
    return document.text() + "\n"
  }()
}
