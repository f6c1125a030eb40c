/// Memory growth against work done (KSP-9.2): a least-squares line through the memory readings
/// of the later half of the work, with the uncertainty of its slope.
///
/// Why the later half: a runtime grows while it warms up (compiled code, inline caches, tables
/// sized on first use, bounded windows filling), then levels off; a leak grows to the end. A
/// line through the whole run blames the warm-up on the streams; a line through the later half
/// sees a leak at its full rate and a warm-up only if it has not finished.
public struct GrowthFit: Sendable, Hashable, Codable {
  /// Bytes per unit of work (one stream completed, or one chunk delivered).
  public var slope: Double
  /// Two standard errors of the slope: the readings' scatter around the line says the true
  /// slope lies within `slope ± margin` (about 95 %, for independent scatter).
  public var margin: Double
  /// The readings fitted, and the work from the first to the last of them.
  public var points: Int
  public var fromWork: Double
  public var toWork: Double

  /// The fewest readings a slope and its scatter are fitted from.
  public static let minimumPoints = 5

  public init(slope: Double, margin: Double, points: Int, fromWork: Double, toWork: Double) {
    self.slope = slope
    self.margin = margin
    self.points = points
    self.fromWork = fromWork
    self.toWork = toWork
  }

  /// One memory reading: the work done so far, the streams open at that moment (opened, not yet
  /// terminal, as the harness counts them) and the bytes read.
  public struct Reading: Sendable, Hashable {
    public var work: Double
    public var open: Double
    public var bytes: Double
    public init(work: Double, open: Double = 0, bytes: Double) {
      self.work = work
      self.open = open
      self.bytes = bytes
    }
  }

  /// The fit through the readings whose work lies in the later half of the range the readings
  /// span; nil with fewer than ``minimumPoints`` there, or no spread in work.
  public static func laterHalf(_ readings: [Reading]) -> GrowthFit? {
    guard let first = readings.map(\.work).min(), let last = readings.map(\.work).max(), last > first else {
      return nil
    }
    let middle = first + (last - first) / 2
    return fit(readings.filter { $0.work >= middle })
  }

  /// Least squares of bytes over work, with a level of its own for each number of streams open:
  /// what open streams hold (their entries, their buffers, messages in flight), whatever its
  /// shape, is set apart from what the work left behind, so that streams closing at the end of
  /// a run neither hide a leak nor make one. The slope comes from readings taken with the same
  /// number of streams open (a steady closed model: all of them); a reading alone at its number
  /// tells nothing of the slope. Nil when too few readings share a number of streams open
  /// (``minimumPoints`` when all share one; one fewer per further number shared) or when they
  /// do not spread in work.
  public static func fit(_ readings: [Reading]) -> GrowthFit? {
    let groups = Dictionary(grouping: readings, by: \.open).values
    // Each reading as its distance from its group's means: (work, bytes).
    let centred = groups.filter { $0.count > 1 }.flatMap { group in
      let n = Double(group.count)
      let mw = group.reduce(0) { $0 + $1.work } / n
      let my = group.reduce(0) { $0 + $1.bytes } / n
      return group.map { (work: $0.work - mw, bytes: $0.bytes - my, at: $0.work) }
    }
    let sww = centred.reduce(0) { $0 + $1.work * $1.work }
    let swy = centred.reduce(0) { $0 + $1.work * $1.bytes }
    let freedom = readings.count - groups.count - 1
    guard freedom >= minimumPoints - 2, sww > 0, sww.isFinite else { return nil }
    let slope = swy / sww
    let residuals = centred.reduce(0) { sum, r in
      let e = r.bytes - slope * r.work
      return sum + e * e
    }
    let standardError = (residuals / Double(freedom) / sww).squareRoot()
    return GrowthFit(
      slope: slope, margin: 2 * standardError, points: centred.count, fromWork: centred.map(\.at).min() ?? 0,
      toWork: centred.map(\.at).max() ?? 0)
  }
}
