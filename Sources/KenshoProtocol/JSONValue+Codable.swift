import Foundation

extension JSONValue {
  /// The JSON form of an `Encodable` value.
  public init(encoding value: some Encodable) throws {
    if let json = value as? JSONValue {
      self = json
      return
    }
    let data = try JSONEncoder().encode(value)
    self = try JSONDecoder().decode(JSONValue.self, from: data)
  }

  /// Decodes this value as `type`.
  public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
    if let same = self as? T { return same }
    return try JSONDecoder().decode(T.self, from: KenshoCodec.encode(self))
  }
}
