import Foundation

/// Inline SVG charts for the HTML report: no scripts, no external assets. Axes have round
/// ticks (1, 2 or 5 × 10^k) in a unit chosen by the magnitude of the data; percentile curves
/// use a logarithmic axis of 1/(1 − p), as HdrHistogram's plots do, so that the tail gets room.
enum Chart {
  struct Series {
    var name: String
    var color: String
    var points: [(x: Double, y: Double)]
  }

  static let width = 560.0
  static let height = 240.0
  static let left = 56.0
  static let right = 16.0
  static let top = 28.0
  static let bottom = 40.0

  /// A horizontal axis: linear over a quantity, or the percentile axis.
  enum XAxis {
    case linear(Quantity, label: String)
    /// x is the percentile (0–100); `decades` the axis's reach: 10 ^ decades = 1/(1 − p) at
    /// the right edge (enough for the number of values: beyond it the curve has nothing to say).
    case percentile(decades: Int)
  }

  /// A line chart of `series`, y over a quantity.
  static func line(title: String, x xAxis: XAxis, y quantity: Quantity, yLabel: String, series: [Series]) -> Markup {
    let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    guard !all.isEmpty else {
      return .el("p", [("class", "muted")], text: "\(title): no data")
    }
    let plotW = width - left - right
    let plotH = height - top - bottom
    // x: position in [0, 1] and ticks.
    let xPos: (Double) -> Double
    var xTicks: [(Double, String)] = []
    var xText: String
    switch xAxis {
    case .percentile(let decades):
      let d = Double(max(1, min(decades, 9)))
      xPos = { p in
        let inverse = p >= 100 ? Double.infinity : 1 / (1 - p / 100)
        return min(log10(max(inverse, 1)), d) / d
      }
      xTicks.append((xPos(0), "0%"))
      if d <= 6 { xTicks.append((xPos(50), "50%")) }
      for k in 1...Int(d) {
        xTicks.append((Double(k) / d, Units.percentile(decade: k)))
      }
      xText = "percentile"
    case .linear(let q, let label):
      let (x0, x1) = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
      let scale = q.scale(for: max(abs(x0), abs(x1)))
      let ticks = Ticks.nice(x0 / scale.divisor, x1 / scale.divisor, count: 6)
      let lo = ticks.values.first ?? 0
      let hi = max(ticks.values.last ?? 1, lo + ticks.step)
      xPos = { x in (x / scale.divisor - lo) / (hi - lo) }
      xTicks = ticks.values.map { ((($0 - lo) / (hi - lo)), Ticks.label($0, step: ticks.step)) }
      xText = scale.unit.isEmpty ? label : "\(label) (\(scale.unit))"
    }
    let ymax = max(all.map(\.y).max() ?? 1, 0)
    let ymin = min(all.map(\.y).min() ?? 0, 0)
    let yScale = quantity.scale(for: max(abs(ymax), abs(ymin)))
    let yTicks = Ticks.nice(ymin / yScale.divisor, ymax / yScale.divisor, count: 5)
    let y0 = yTicks.values.first ?? 0
    let y1 = max(yTicks.values.last ?? 1, y0 + yTicks.step)
    let px = { (x: Double) in left + min(max(xPos(x), 0), 1) * plotW }
    let py = { (y: Double) in top + plotH - (y / yScale.divisor - y0) / (y1 - y0) * plotH }
    var nodes: [Markup] = [
      .el("title", text: title),
      .el("rect", [("x", f(left)), ("y", f(top)), ("width", f(plotW)), ("height", f(plotH)), ("class", "plot")]),
    ]
    for v in yTicks.values {
      let y = top + plotH - (v - y0) / (y1 - y0) * plotH
      nodes.append(
        .el("line", [("x1", f(left)), ("x2", f(left + plotW)), ("y1", f(y)), ("y2", f(y)), ("class", "grid")]))
      nodes.append(
        .el(
          "text", [("x", f(left - 6)), ("y", f(y + 4)), ("class", "tick end")], text: Ticks.label(v, step: yTicks.step))
      )
    }
    for (pos, label) in xTicks {
      let x = left + pos * plotW
      nodes.append(
        .el("line", [("x1", f(x)), ("x2", f(x)), ("y1", f(top)), ("y2", f(top + plotH)), ("class", "grid")]))
      // The first and last labels are anchored inside the plot, so that none is cut off.
      let anchor = pos <= 0.001 ? "start" : pos >= 0.999 ? "end" : "mid"
      nodes.append(.el("text", [("x", f(x)), ("y", f(top + plotH + 14)), ("class", "tick \(anchor)")], text: label))
    }
    nodes.append(.el("text", [("x", f(left + plotW / 2)), ("y", f(height - 6)), ("class", "axis mid")], text: xText))
    let yText = yScale.unit.isEmpty ? yLabel : "\(yLabel) (\(yScale.unit))"
    nodes.append(.el("text", [("x", f(left)), ("y", "16"), ("class", "axis")], text: yText))
    var legendX = left + plotW
    for (i, s) in series.enumerated().reversed() {
      // The legend sits above the plot, right-aligned, each name after its colour.
      legendX -= Double(s.name.count) * 6 + 24
      nodes.append(
        .el("rect", [("x", f(legendX)), ("y", "8"), ("width", "10"), ("height", "10"), ("fill", s.color)]))
      nodes.append(.el("text", [("x", f(legendX + 14)), ("y", "17"), ("class", "legend")], text: s.name))
      let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }.map { (px($0.x), py($0.y)) }
      if points.count == 1, let p = points.first {
        nodes.append(.el("circle", [("cx", f(p.0)), ("cy", f(p.1)), ("r", "3"), ("fill", s.color)]))
      } else {
        // Later series are dashed, so that a series hidden under another still shows.
        let dash: [(String, String)] = i > 0 ? [("stroke-dasharray", "6 3")] : []
        nodes.append(
          .el(
            "polyline",
            [("points", points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")), ("stroke", s.color)]
              + [("class", "series")] + dash))
      }
    }
    return .el(
      "figure", [("class", "chart")],
      [
        .el("figcaption", text: title),
        .el(
          "svg",
          [("viewBox", "0 0 \(f(width)) \(f(height))"), ("class", "chart"), ("role", "img"), ("aria-label", title)],
          nodes),
      ])
  }

  static func f(_ v: Double) -> String { String(format: "%.1f", v) }
}

/// What a chart axis measures, which decides its unit.
enum Quantity {
  /// Durations, given in microseconds: shown in ns, µs, ms or s.
  case durationUs
  /// Bytes: shown in B, KiB, MiB or GiB.
  case bytes
  /// Plain counts: shown as they are, with k and M past ten thousand.
  case count

  /// The divisor and unit for values up to `magnitude`.
  func scale(for magnitude: Double) -> (divisor: Double, unit: String) {
    switch self {
    case .durationUs: Units.durationScale(us: magnitude)
    case .bytes: Units.bytesScale(magnitude)
    case .count:
      magnitude >= 1e7 ? (1e6, "millions") : magnitude >= 1e4 ? (1e3, "thousands") : (1, "")
    }
  }
}

/// Round tick values for an axis.
enum Ticks {
  /// Ticks at multiples of a round step (1, 2 or 5 × 10^k) that cover [lo, hi], about
  /// `count` of them, the first at or below `lo` and the last at or above `hi`.
  static func nice(_ lo: Double, _ hi: Double, count: Int = 5) -> (values: [Double], step: Double) {
    guard lo.isFinite, hi.isFinite else { return ([0, 1], 1) }
    var (a, b) = (min(lo, hi), max(lo, hi))
    if b - a < 1e-12 {
      // One value: an axis from 0 (or around it) that shows it.
      if a == 0 {
        b = 1
      } else if a > 0 {
        a = 0
      } else {
        b = 0
      }
    }
    let step = niceStep((b - a) / Double(max(1, count - 1)))
    let first = (a / step).rounded(.down)
    let last = (b / step).rounded(.up)
    guard last - first < 1_000 else { return ([a, b], b - a) }
    let values = stride(from: first, through: last, by: 1).map { $0 * step }
    return (values, step)
  }

  /// The round number (1, 2 or 5 × 10^k) at or above `raw`.
  static func niceStep(_ raw: Double) -> Double {
    guard raw > 0, raw.isFinite else { return 1 }
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let fraction = raw / magnitude
    let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
    return nice * magnitude
  }

  /// A tick value with as many decimals as its step needs: 0, 0.5, 1; 2000; 0.02.
  static func label(_ v: Double, step: Double) -> String {
    let decimals = step >= 1 ? 0 : min(6, Int((-log10(step)).rounded(.up)))
    if abs(v) < step * 1e-9 { return "0" }
    return String(format: "%.\(decimals)f", v)
  }
}

/// Figures with a unit chosen by their magnitude.
public enum Units {
  /// Three significant digits: 2.50, 25.0, 250.
  static func significant(_ v: Double) -> String {
    let a = abs(v)
    if a >= 100 || a == 0 { return String(format: "%.0f", v) }
    if a >= 10 { return String(format: "%.1f", v) }
    return String(format: "%.2f", v)
  }

  /// The divisor (from µs) and unit for durations up to `us`.
  static func durationScale(us: Double) -> (divisor: Double, unit: String) {
    if us >= 1e6 { return (1e6, "s") }
    if us >= 1e3 { return (1e3, "ms") }
    if us >= 1 || us == 0 { return (1, "µs") }
    return (1e-3, "ns")
  }

  /// A duration given in µs: "850 ns", "12.5 µs", "2.50 s", "3 min 20 s".
  public static func duration(us: Double) -> String {
    guard us.isFinite else { return "\(us) µs" }
    if abs(us) >= 600e6 {
      let seconds = Int((us / 1e6).rounded())
      return "\(seconds / 60) min \(seconds % 60) s"
    }
    let (divisor, unit) = durationScale(us: abs(us))
    return significant(us / divisor) + " " + unit
  }

  /// A duration given in ms.
  public static func duration(ms: Double) -> String { duration(us: ms * 1e3) }

  static func bytesScale(_ v: Double) -> (divisor: Double, unit: String) {
    if v >= 1_073_741_824 { return (1_073_741_824, "GiB") }
    if v >= 1_048_576 { return (1_048_576, "MiB") }
    if v >= 1_024 { return (1_024, "KiB") }
    return (1, "B")
  }

  /// "512 B", "2.00 KiB", "3.50 MiB".
  public static func bytes(_ v: Double) -> String {
    guard v.isFinite else { return "\(v) B" }
    let (divisor, unit) = bytesScale(abs(v))
    return (divisor == 1 ? String(format: "%.0f", v) : significant(v / divisor)) + " " + unit
  }

  /// A count with thin grouping: "1 234 567".
  public static func count(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
      if i > 0 && (digits.count - i) % 3 == 0 { out += "\u{202F}" }
      out.append(c)
    }
    return (n < 0 ? "-" : "") + out
  }

  /// A rate per second: "12.3 k/s".
  static func rate(_ v: Double, _ unit: String) -> String {
    if v >= 1e6 { return significant(v / 1e6) + " M\(unit)/s" }
    if v >= 1e4 { return significant(v / 1e3) + " k\(unit)/s" }
    return String(format: "%.0f", v) + " \(unit)/s"
  }

  /// The percentile at the `k`th decade of 1/(1 − p): 90%, 99%, 99.9%, ...
  static func percentile(decade k: Int) -> String {
    k <= 0 ? "0%" : "9" + (k > 1 ? "9" + (k > 2 ? "." + String(repeating: "9", count: k - 2) : "") : "0") + "%"
  }
}
