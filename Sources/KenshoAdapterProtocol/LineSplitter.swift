#if canImport(Glibc)
  import Glibc
#endif

/// Splits what a process writes into lines, holding at most one partial line of at most
/// `maxLine` bytes. Each line is a copy: no line keeps a larger buffer alive.
public struct LineSplitter: Sendable {
  public struct TooLong: Error {
    public var length: Int
  }

  public let maxLine: Int
  public private(set) var partial: [UInt8] = []

  public init(maxLine: Int) {
    self.maxLine = maxLine
  }

  /// Appends `bytes` and hands over each complete line in them, without its newline; lines of
  /// JSON whitespace only are skipped. Throws when a line grows past `maxLine`; the splitter is
  /// then unusable.
  public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: ([UInt8]) -> Void) throws(TooLong) {
    guard let base = bytes.baseAddress else { return }
    var start = 0
    while start < bytes.count {
      guard let found = memchr(base + start, 0x0A, bytes.count - start) else {
        guard partial.count + (bytes.count - start) <= maxLine else {
          throw TooLong(length: partial.count + bytes.count - start)
        }
        partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        return
      }
      let newline = UnsafeRawPointer(found) - base
      guard partial.count + (newline - start) <= maxLine else {
        throw TooLong(length: partial.count + newline - start)
      }
      let complete: [UInt8]
      if partial.isEmpty {
        complete = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<newline]))
      } else {
        partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<newline]))
        complete = partial
        partial = []
      }
      if !Self.isBlank(complete) { line(complete) }
      start = newline + 1
    }
  }

  /// The last line, when the output ended without a newline.
  public mutating func finish() -> [UInt8]? {
    defer { partial = [] }
    return Self.isBlank(partial) ? nil : partial
  }

  public static func isBlank(_ line: [UInt8]) -> Bool {
    line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
  }
}
