public import Foundation
public import KenshoProtocol

/// Chunk data, made deterministically from the scenario's seed, the stream and the chunk
/// index: producers emit it, and consumers check what they receive against it.
public struct ChunkGenerator: Sendable {
  public let content: ChunkContent
  private let text: String
  private let block: [UInt8]
  private let blockBase64Tail: String
  /// Approximate payload size in bytes, for throughput figures (computed once: it is read for
  /// every chunk delivered).
  public let approximateBytes: Int

  public init(content: ChunkContent, seed: UInt64) {
    self.content = content
    approximateBytes = Self.approximateBytes(content)
    var rng = SplitMix64(seed: seed)
    switch content {
    case .text(let size):
      // Sizes come from the loader (0 to 64 MiB); a negative one made in code is empty.
      let size = max(0, size)
      let alphabet = Array("abcdefghijklmnopqrstuvwxyz ".utf8)
      text = String(decoding: (0..<size).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }, as: UTF8.self)
      block = []
      blockBase64Tail = ""
    case .binary(let size):
      // At least the 6 bytes of the index, whatever was asked for in code.
      let size = max(6, size)
      var bytes = [UInt8](repeating: 0, count: size)
      for i in 0..<size { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
      block = bytes
      // The first 6 bytes carry the index; 6 bytes are 8 base64 characters, so the rest of the
      // block encodes the same for every chunk and is encoded once.
      blockBase64Tail = Base64.encode(bytes[6...])
      text = ""
    default:
      text = ""
      block = []
      blockBase64Tail = ""
    }
  }

  /// The chunk with index `index`.
  public func chunk(_ index: Int) -> JSONValue {
    switch content {
    case .sequence: return .int(Int64(index))
    case .json(let value): return value
    case .values(let values): return values[index % values.count]
    case .text: return .object(["i": .int(Int64(index)), "text": .string(text)])
    case .binary: return .string(Base64.encode(Self.indexBytes(index)) + blockBase64Tail)
    }
  }

  /// The raw bytes of binary chunk `index` (for digests).
  public func bytes(_ index: Int) -> [UInt8] {
    guard case .binary = content else { return [] }
    return Self.indexBytes(index) + block[6...]
  }

  /// Whether `value` is chunk `index`. Large kinds compare the index stamp and the size, so
  /// that checking does not cost as much as generating.
  public func matches(_ value: JSONValue, index: Int) -> Bool {
    switch content {
    case .sequence, .json, .values: return value == chunk(index)
    case .text(let size):
      guard case .object(let o) = value, o["i"]?.intValue == Int64(index), case .string(let s)? = o["text"] else {
        return false
      }
      return s.utf8.count == size
    case .binary(let size):
      guard case .string(let s) = value else { return false }
      return s.utf8.count == (size + 2) / 3 * 4
        && s.utf8.prefix(8).elementsEqual(Base64.encode(Self.indexBytes(index)).utf8)
    }
  }

  private static func approximateBytes(_ content: ChunkContent) -> Int {
    switch content {
    case .sequence: 8
    case .json(let v): (try? KenshoCodec.encode(v).count) ?? 0
    case .values(let vs): vs.isEmpty ? 0 : ((try? KenshoCodec.encode(vs[0]).count) ?? 0)
    case .text(let size): size + 16
    case .binary(let size): size
    }
  }

  static func indexBytes(_ index: Int) -> [UInt8] {
    let i = UInt64(truncatingIfNeeded: index)
    return (0..<6).map { UInt8(truncatingIfNeeded: i >> (8 * (5 - $0))) }
  }
}

/// SplitMix64: a small, fast, seedable generator, so that runs replay from their seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
  private var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Base64 through Foundation.
public enum Base64 {
  public static func encode(_ bytes: some Sequence<UInt8>) -> String { Data(bytes).base64EncodedString() }
  public static func decode(_ text: String) -> Data? { Data(base64Encoded: text) }
}
