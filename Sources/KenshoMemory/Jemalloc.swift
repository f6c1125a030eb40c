import CJemalloc

/// jemalloc's allocation statistics for the whole process.
///
/// Linking this module links jemalloc, which then serves every `malloc` of the process, so the
/// figures cover everything the process holds: the bus's `activeStreams`, its emitters and
/// whatever else is alive.
public enum Jemalloc {
  /// One reading of `stats.*`, in bytes.
  public struct Snapshot: Sendable, Hashable, Codable {
    /// Bytes allocated by the application (`stats.allocated`).
    public var allocated: Int
    /// Bytes in active pages (`stats.active`), a multiple of the page size.
    public var active: Int
    /// Bytes in physically resident data pages (`stats.resident`).
    public var resident: Int
  }

  /// Reads the statistics, after flushing this thread's cache (whose counts jemalloc merges
  /// lazily) and refreshing them by writing `epoch`. `nil` when jemalloc is not the process's
  /// allocator or was built without statistics.
  public static func snapshot() -> Snapshot? {
    _ = mallctl("thread.tcache.flush", nil, nil, nil, 0)
    var epoch: UInt64 = 1
    guard mallctl("epoch", nil, nil, &epoch, MemoryLayout<UInt64>.size) == 0 else { return nil }
    guard let allocated = read("stats.allocated"), let active = read("stats.active"),
      let resident = read("stats.resident")
    else { return nil }
    return Snapshot(allocated: allocated, active: active, resident: resident)
  }

  /// Bytes allocated now (`stats.allocated`), or `nil` without jemalloc statistics.
  public static func allocated() -> Int? { snapshot()?.allocated }

  /// jemalloc's version string, e.g. `5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c`.
  public static var version: String? {
    var pointer: UnsafePointer<CChar>?
    var size = MemoryLayout<UnsafePointer<CChar>?>.size
    guard mallctl("version", &pointer, &size, nil, 0) == 0, let pointer else { return nil }
    return String(cString: pointer)
  }

  /// Whether heap profiling is active (`MALLOC_CONF=prof:true` and a profiling build).
  public static var isProfiling: Bool {
    var enabled = false
    var size = MemoryLayout<Bool>.size
    return mallctl("opt.prof", &enabled, &size, nil, 0) == 0 && enabled
  }

  private static func read(_ name: String) -> Int? {
    var value = 0
    var size = MemoryLayout<Int>.size
    guard mallctl(name, &value, &size, nil, 0) == 0 else { return nil }
    return value
  }
}

extension Jemalloc {
  /// Bytes this thread has allocated and freed since it started (`thread.allocated`,
  /// `thread.deallocated`). Their difference over a stretch of single-threaded work is what that
  /// work retained, whatever other threads allocate meanwhile.
  public static func threadCounters() -> (allocated: UInt64, deallocated: UInt64)? {
    var allocated: UInt64 = 0
    var deallocated: UInt64 = 0
    var size = MemoryLayout<UInt64>.size
    guard mallctl("thread.allocated", &allocated, &size, nil, 0) == 0 else { return nil }
    size = MemoryLayout<UInt64>.size
    guard mallctl("thread.deallocated", &deallocated, &size, nil, 0) == 0 else { return nil }
    return (allocated, deallocated)
  }

  /// Net bytes this thread holds: allocated minus freed since the thread started.
  public static func threadNet() -> Int64? {
    threadCounters().map { Int64(bitPattern: $0.allocated &- $0.deallocated) }
  }
}

extension Jemalloc {
  /// Writes a heap profile (`prof.dump`) to `path`; needs profiling on.
  public static func dumpProfile(to path: String) -> Bool {
    path.withCString { cPath in
      var pointer: UnsafePointer<CChar>? = cPath
      return mallctl("prof.dump", nil, nil, &pointer, MemoryLayout<UnsafePointer<CChar>?>.size) == 0
    }
  }
}
