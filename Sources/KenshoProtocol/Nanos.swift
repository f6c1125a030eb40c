/// Checked conversions into the harness clock, which counts `Int64` nanoseconds.
///
/// `Int64(ms * 1e6)` traps when `ms * 1e6` is not finite or lies outside `Int64`: a scenario time of
/// `1e13` ms does. These conversions never trap: they saturate at ±``max``, which is half of
/// `Int64.max` (about 146 years), so that the sum of two converted values still fits in `Int64`
/// and a timer set at `now + delay` cannot wrap into the past. NaN converts to 0.
///
/// Values the scenario loader accepts (at most `ScenarioLimits.maxTimeMs`) convert exactly, to the
/// nanosecond below.
public enum Nanos {
  /// The largest magnitude a conversion returns: `Int64.max / 2` ns, about 146 years.
  public static let max: Int64 = Int64.max / 2

  /// `ms` milliseconds in nanoseconds, rounded toward zero, saturating at ±``max``; NaN is 0.
  public static func from(ms: Double) -> Int64 { saturating(ms * 1e6) }

  /// `seconds` in nanoseconds, rounded toward zero, saturating at ±``max``; NaN is 0.
  public static func from(seconds: Double) -> Int64 { saturating(seconds * 1e9) }

  /// `ms` milliseconds in nanoseconds, or `nil` when `ms` is not finite or converts beyond
  /// ±``max``.
  public static func exactly(ms: Double) -> Int64? {
    let ns = ms * 1e6
    guard ns.isFinite, ns.magnitude <= Double(max) else { return nil }
    return saturating(ns)
  }

  /// The interval between events at `rate` events per second: at least 1 ns, at most ``max``
  /// (a rate of 0, below 0 or NaN gives ``max``: the next event never comes).
  public static func interval(perSecond rate: Double) -> Int64 {
    guard rate > 0 else { return max }
    return Swift.max(1, saturating(1e9 / rate))
  }

  /// `a + b`, saturating at the bounds of `Int64`.
  public static func adding(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard overflow else { return sum }
    return b > 0 ? .max : .min
  }

  /// `a × n`, saturating at the bounds of `Int64`.
  public static func multiplying(_ a: Int64, by n: Int64) -> Int64 {
    let (product, overflow) = a.multipliedReportingOverflow(by: n)
    guard overflow else { return product }
    return (a < 0) == (n < 0) ? .max : .min
  }

  /// `ms` milliseconds as a `Duration`, saturating as ``from(ms:)``.
  public static func duration(ms: Double) -> Duration { .nanoseconds(from(ms: ms)) }

  /// `seconds` as a `Duration`, saturating as ``from(seconds:)``.
  public static func duration(seconds: Double) -> Duration { .nanoseconds(from(seconds: seconds)) }

  private static func saturating(_ ns: Double) -> Int64 {
    if ns.isNaN { return 0 }
    // Double(max) is 2^62, which Int64 holds; anything at or beyond it saturates.
    if ns >= Double(max) { return max }
    if ns <= -Double(max) { return -max }
    return Int64(ns)
  }
}
