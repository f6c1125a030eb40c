import Foundation

/// The JSON Schema of `kensho-scenario/1`, committed beside the loader.
public enum ScenarioSchema {
  /// The schema's text, or `nil` when the package's resources are missing.
  public static var text: String? {
    guard let url = Bundle.module.url(forResource: "kensho-scenario-1.schema", withExtension: "json"),
      let data = try? Data(contentsOf: url)
    else { return nil }
    return String(decoding: data, as: UTF8.self)
  }
}
