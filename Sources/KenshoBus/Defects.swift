/// Defects the reference bus can be built with, for kensho-bench's own tests: each breaks one
/// rule on purpose, so that a test can show the check deciding that rule fails. They are not
/// part of ``BusConfiguration``; only the SPI initializer of ``MessageBus`` takes them.
@_spi(Testing) public struct BusDefects: OptionSet, Sendable, Hashable {
  public let rawValue: UInt8
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// The bus keeps every terminated stream's entry, so memory grows with each stream (KSP-9.2).
  public static let leaksEndedStreams = BusDefects(rawValue: 1 << 0)
  /// A repeated `stream_request` runs the handler again (KSP-2.4).
  public static let rerunsDuplicateRequests = BusDefects(rawValue: 1 << 1)
  /// The idle sweep never runs (KSP-6.2).
  public static let neverSweeps = BusDefects(rawValue: 1 << 2)
  /// A chunk for an active stream from any worker refreshes it, though it is then dropped (KSP-3.3).
  public static let refreshesOnAnySender = BusDefects(rawValue: 1 << 3)
}
