/// The common start of every KSP-11 check: the journal, or why there is none.
enum RelayProbeNeeded {
  static let absent = CheckOutcome.untested("the scenario did not run over a relay (network kind \"relay\")")

  static func counterexample(_ text: String, at t: Int64? = nil) -> Counterexample {
    Counterexample(atMs: t.map(History.ms), text: text)
  }
}
