import Crypto
import DequeModule
import Dispatch
import Foundation
import Histogram
@_spi(Testing) import KenshoBus
import KenshoMemory
import KenshoProtocol
import KenshoScenario
import KenshoVerdict
import Synchronization

/// How to run: measuring on or off, and a way to stop early.
public struct RunOptions: Sendable {
  /// Latency histograms and memory sampling; off, memory checks are `unsupported`.
  public var measure: Bool
  /// Polled during the run; true stops it (verdict `error`, "interrupted").
  public var cancelled: @Sendable () -> Bool

  /// Runs a reference bus that leaks every ended stream: for testing the leak verdict.
  @_spi(Testing) public var leakingReference = false
  /// The harness's own `onChunk` never returns: a stand-in for a bus that livelocks inside a
  /// delivery, for the watchdog's tests.
  @_spi(Testing) public var hangsInOnChunk = false
  /// Defects to switch on in the reference bus, to prove that scenarios catch them.
  @_spi(Testing) public var referenceDefects: Set<ReferenceDefect> = []
  /// Folder for heap profiles written when a leak check fails (with `MALLOC_CONF=prof:true`).
  public var profileDirectory: String?
  /// Run against the implementation this command starts (the adapter protocol) instead of
  /// the reference bus in process.
  public var adapterCommand: String?
  /// How long an adapter may take to answer one operation.
  public var adapterDeadline: Duration = .seconds(20)
  /// Relay scenarios run over the relay at this address instead of an embedded one.
  public var relayURL: String?
  /// Relay scenarios run over the relay this command starts (its port in `KENSHO_RELAY_PORT`).
  public var relayCommand: String?
  /// The token for `relayURL`, instead of the scenario's.
  public var relayToken: String?
  /// Frames of 64 KiB the relay probe floods past its stalled receiver (KSP-11.6); fewer make a
  /// faster probe for tests that do not judge that rule.
  @_spi(Testing) public var relayProbeFloodFrames = 256
  /// Adapter lines of the hot path (`send`, callbacks) are read by ``HotLine`` before the general
  /// checker; off only to measure what it saves (kensho-bus-bench's baseline).
  public var hotLines = true
  /// Receives what adapter processes write to stderr.
  public var adapterLog: (@Sendable (String) -> Void)?

  public init(
    measure: Bool = true, profileDirectory: String? = nil, cancelled: @escaping @Sendable () -> Bool = { false }
  ) {
    self.measure = measure
    self.profileDirectory = profileDirectory
    self.cancelled = cancelled
  }
}

/// Defects the reference bus can be run with, for the harness's own tests.
@_spi(Testing) public enum ReferenceDefect: String, Sendable, Hashable, CaseIterable {
  /// Terminated streams stay in memory (KSP-9.2).
  case leaksEndedStreams
  /// Chunks carry no `seq`, so reordering and repeats reach the callbacks (KSP-3.4, 4.4).
  case unnumberedChunks
  /// A repeated `stream_request` runs the handler again (KSP-2.4).
  case rerunsDuplicateRequests
  /// The idle sweep never runs (KSP-6.2).
  case neverSweeps
  /// A chunk from any worker refreshes a stream's activity (KSP-3.3).
  case refreshesOnAnySender
  /// Producers ignore flow-control offers, as a bus without the KSP-FC extension does.
  case withoutFlowControl
}
