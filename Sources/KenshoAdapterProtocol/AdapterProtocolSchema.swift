import KenshoProtocol
import KenshoScenario

/// The JSON Schema (draft 2020-12) of every line of `kensho-adapter/1`, written from
/// ``AdapterProtocolFormat``: a line validates against `operation` (harness → implementation)
/// or `event` (implementation → harness); an ack is also checked, by the harness, against
/// `ack-OP` for the operation OP it answers.
///
/// The copy committed at `docs/kensho-adapter-1.schema.json`, for adapters in other languages,
/// must equal it; a test says so, and `swift run kensho-bench schema adapter >
/// docs/kensho-adapter-1.schema.json` writes it again.
public enum AdapterProtocolSchema {
  /// Where the committed copy lives, from the package's root.
  public static let committedPath = "docs/kensho-adapter-1.schema.json"
  /// The command that writes the committed copy again.
  public static let regenerate = "swift run kensho-bench schema adapter > \(committedPath)"

  /// The schema's text, ending with a newline.
  public static let text: String = {
    var writer = SchemaWriter()
    let acks = AdapterProtocolFormat.operations.map { op in
      ("ack-\(op.name)", AdapterProtocolFormat.ack(for: op.name))
    }
    let document = writer.document(
      defining: [("operation", AdapterProtocolFormat.operation), ("event", AdapterProtocolFormat.event)] + acks,
      header: [
        ("$schema", "https://json-schema.org/draft/2020-12/schema"),
        ("$id", "https://kensho-bench.invalid/schemas/kensho-adapter-1.schema.json"),
        ("title", .string("kensho-bench adapter protocol (\(AdapterProtocolFormat.version)), one line")),
      ],
      body: [
        (
          "description",
          .string(
            "One line of the adapter protocol: an operation the harness writes, or an event or ack the implementation "
              + "writes. An ack must also match $defs/ack-OP for the operation OP it answers (unless it carries an error)."
          )
        ),
        ("oneOf", .array([.object([("$ref", "#/$defs/operation")]), .object([("$ref", "#/$defs/event")])])),
      ])
    return document.text() + "\n"
  }()
}
