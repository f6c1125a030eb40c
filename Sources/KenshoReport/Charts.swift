import Foundation

/// Inline SVG charts for the HTML report: no scripts, no external assets.
enum Chart {
  struct Series {
    var name: String
    var color: String
    var points: [(x: Double, y: Double)]
  }

  static let width = 560.0
  static let height = 220.0
  static let left = 64.0
  static let right = 16.0
  static let top = 16.0
  static let bottom = 40.0

  /// A line chart. With `logX`, x is drawn on a log scale (for percentile curves, where x is
  /// 1/(1-percentile)).
  static func line(
    title: String, xLabel: String, yLabel: String, series: [Series], logX: Bool = false,
    xTicks: [(Double, String)]? = nil
  ) -> Markup {
    let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    guard !all.isEmpty else {
      return .el("p", [("class", "muted")], text: "\(title): no data")
    }
    let tx = { (x: Double) in logX ? log10(max(x, 1)) : x }
    let xs = all.map { tx($0.x) }
    let (x0, x1) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9))
    let (y0, y1) = (min(0, all.map(\.y).min() ?? 0), max(all.map(\.y).max() ?? 1, 1e-9))
    let plotW = width - left - right
    let plotH = height - top - bottom
    let px = { (x: Double) in left + (tx(x) - x0) / (x1 - x0) * plotW }
    let py = { (y: Double) in top + plotH - (y - y0) / (y1 - y0) * plotH }
    var nodes: [Markup] = [
      .el("title", text: title),
      .el("rect", [("x", f(left)), ("y", f(top)), ("width", f(plotW)), ("height", f(plotH)), ("class", "plot")]),
    ]
    for i in 0...4 {
      let y = y0 + (y1 - y0) * Double(i) / 4
      nodes.append(
        .el("line", [("x1", f(left)), ("x2", f(left + plotW)), ("y1", f(py(y))), ("y2", f(py(y))), ("class", "grid")]))
      nodes.append(.el("text", [("x", f(left - 6)), ("y", f(py(y) + 4)), ("class", "tick end")], text: short(y)))
    }
    let ticks =
      xTicks
      ?? (0...4).map { i -> (Double, String) in
        let v = x0 + (x1 - x0) * Double(i) / 4
        let x = logX ? pow(10, v) : v
        return (x, short(x))
      }
    for (x, label) in ticks where tx(x) >= x0 - 1e-9 && tx(x) <= x1 + 1e-9 {
      nodes.append(.el("text", [("x", f(px(x))), ("y", f(top + plotH + 16)), ("class", "tick mid")], text: label))
    }
    nodes.append(.el("text", [("x", f(left + plotW / 2)), ("y", f(height - 4)), ("class", "axis mid")], text: xLabel))
    nodes.append(
      .el(
        "text",
        [
          ("x", "12"), ("y", f(top + plotH / 2)), ("class", "axis mid"),
          ("transform", "rotate(-90 12 \(f(top + plotH / 2)))"),
        ], text: yLabel))
    for (i, s) in series.enumerated() {
      let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }.map { "\(f(px($0.x))),\(f(py($0.y)))" }
      if points.count == 1 {
        let xy = points[0].split(separator: ",")
        nodes.append(.el("circle", [("cx", String(xy[0])), ("cy", String(xy[1])), ("r", "3"), ("fill", s.color)]))
      } else {
        // Later series are dashed, so that a series hidden under another still shows.
        let dash: [(String, String)] = i > 0 ? [("stroke-dasharray", "6 3")] : []
        nodes.append(
          .el(
            "polyline", [("points", points.joined(separator: " ")), ("stroke", s.color), ("class", "series")] + dash))
      }
      nodes.append(
        .el(
          "rect",
          [
            ("x", f(left + 8 + Double(i) * 150)), ("y", f(top + 6)), ("width", "10"), ("height", "10"),
            ("fill", s.color),
          ]))
      nodes.append(
        .el("text", [("x", f(left + 22 + Double(i) * 150)), ("y", f(top + 15)), ("class", "legend")], text: s.name))
    }
    return .el(
      "svg", [("viewBox", "0 0 \(f(width)) \(f(height))"), ("class", "chart"), ("role", "img"), ("aria-label", title)],
      nodes)
  }

  /// A message sequence diagram: one lane per worker, one arrow per message, time downwards.
  static func sequence(_ entries: [(t: Double, type: String, from: String, to: String, label: String)]) -> Markup {
    var lanes: [String] = []
    for e in entries {
      if !lanes.contains(e.from) { lanes.append(e.from) }
      if !lanes.contains(e.to) { lanes.append(e.to) }
    }
    guard !entries.isEmpty, lanes.count >= 1 else { return .el("p", [("class", "muted")], text: "no messages traced") }
    let laneGap = 260.0
    let rowH = 22.0
    let w = 120 + laneGap * Double(max(lanes.count - 1, 1)) + 120
    let h = 50 + rowH * Double(entries.count) + 20
    let x = { (name: String) in 120 + laneGap * Double(lanes.firstIndex(of: name) ?? 0) }
    var nodes: [Markup] = [.el("title", text: "message sequence of one stream")]
    for lane in lanes {
      nodes.append(.el("text", [("x", f(x(lane))), ("y", "18"), ("class", "lane mid")], text: lane))
      nodes.append(
        .el("line", [("x1", f(x(lane))), ("x2", f(x(lane))), ("y1", "26"), ("y2", f(h - 10)), ("class", "lifeline")]))
    }
    for (i, e) in entries.enumerated() {
      let y = 46 + rowH * Double(i)
      let (a, b) = (x(e.from), x(e.to))
      let dir = b >= a ? 1.0 : -1.0
      nodes.append(.el("text", [("x", "8"), ("y", f(y + 4)), ("class", "tick")], text: String(format: "%.3f ms", e.t)))
      nodes.append(
        .el("line", [("x1", f(a)), ("x2", f(b - dir * 6)), ("y1", f(y)), ("y2", f(y)), ("class", "msg \(e.type)")]))
      nodes.append(
        .el(
          "polygon",
          [
            ("points", "\(f(b)),\(f(y)) \(f(b - dir * 8)),\(f(y - 4)) \(f(b - dir * 8)),\(f(y + 4))"),
            ("class", "head \(e.type)"),
          ]))
      nodes.append(.el("text", [("x", f((a + b) / 2)), ("y", f(y - 4)), ("class", "msglabel mid")], text: e.label))
    }
    return .el(
      "svg",
      [("viewBox", "0 0 \(f(w)) \(f(h))"), ("class", "sequence"), ("role", "img"), ("aria-label", "message sequence")],
      nodes)
  }

  static func f(_ v: Double) -> String { String(format: "%.1f", v) }

  static func short(_ v: Double) -> String {
    let a = abs(v)
    if a >= 1e9 { return String(format: "%.1fG", v / 1e9) }
    if a >= 1e6 { return String(format: "%.1fM", v / 1e6) }
    if a >= 1e4 { return String(format: "%.0fk", v / 1e3) }
    if a >= 100 || a == 0 { return String(format: "%.0f", v) }
    if a >= 1 { return String(format: "%.1f", v) }
    return String(format: "%.3g", v)
  }
}
