import KenshoProtocol
public import KenshoScenario

/// Turns a scenario's expectations and a run's record into check results: each expectation
/// is decided by the one check type that implements it.
public enum Judge {
  /// The check that decides an expectation.
  public static func check(for e: Expectation) -> any Check {
    switch e.kind {
    case .orderedDelivery: OrderedDelivery()
    case .exactlyOneTerminal: ExactlyOneTerminal()
    case .outcome(let match): ExpectedOutcome(match)
    case .summaryPreserved: SummaryPreserved()
    case .activeStreamsEmpty: ActiveStreamsEmpty()
    case .timeoutWindow: TimeoutWindow(rule: e.rule)
    case .handlerRuns(let n): HandlerRuns(perStream: n, rule: e.rule)
    case .wireValid: WireValid()
    case .streamRequests: StreamRequests()
    case .tracePropagated: TracePropagated()
    case .emitterClosed: EmitterClosed()
    case .payloadDigest: PayloadDigest()
    case .memoryReturns(let max): MemoryReturns(maxBytes: max, rule: e.rule)
    case .peakMemory(let max): PeakMemory(maxBytes: max, rule: e.rule)
    case .noLeak(let perStream, let perChunk): NoLeak(perStream: perStream, perChunk: perChunk, rule: e.rule)
    case .metric(let metric, let min, let max): MetricBound(metric, min: min, max: max, rule: e.rule)
    case .malformedDropped: MalformedDropped()
    case .misaddressedIgnored: MisaddressedIgnored()
    case .chunksAddressed: ChunksAddressed()
    case .cancelStopsProducer: CancelStopsProducer()
    case .foreignCancelIgnored: ForeignCancelIgnored()
    case .seqDelivery: SeqDelivery()
    case .inactiveChunksDropped: InactiveChunksDropped()
    case .activityRefresh: ActivityRefresh()
    case .endAfterChunks: EndAfterChunks()
    case .disconnectRecovery: DisconnectRecovery(rule: e.rule)
    case .reconnect(let ms): Reconnect(within: Nanos.from(ms: ms), rule: e.rule)
    case .relayFanOut: RelayFanOut()
    case .relayOrder: RelayOrder()
    case .relayPing: RelayPing()
    case .relayServerInfo: RelayServerInfo()
    case .relayAuth: RelayAuth()
    case .relaySlowReceiver: RelaySlowReceiver()
    }
  }

  /// Judges one expectation. The rule is the expectation's (a rule its check decides); a
  /// broken SHOULD rule is non-strict, never a failure (PROTOCOL.md).
  public static func judge(_ e: Expectation, _ run: RunRecord) -> CheckResult {
    let check = check(for: e)
    let rule = e.kind.decidableRules.contains(e.rule) ? e.rule : check.rule
    let level = CheckLevel(rule: rule)
    let outcome = check.judge(run)
    func result(_ v: Verdict, _ observed: String, detail: String? = nil, _ c: Counterexample? = nil) -> CheckResult {
      CheckResult(
        name: e.name, rule: rule, level: level, verdict: v, expected: check.expected, observed: observed,
        detail: detail, counterexample: c)
    }
    switch outcome {
    case .pass(let observed):
      // A pass says nothing of a rule whose situation never arose (a vacuous pass).
      if let why = RuleSituation.missing(rule, in: run) {
        return result(.untested, "situation did not occur", detail: why)
      }
      return result(.pass, observed)
    case .fail(let observed, let c): return result(level == .should ? .nonStrict : .fail, observed, c)
    case .untested(let why): return result(.untested, "situation did not occur", detail: why)
    case .unsupported(let why): return result(.unsupported, "not supported", detail: why)
    case .error(let why): return result(.error, "could not be judged", detail: why)
    }
  }
}
