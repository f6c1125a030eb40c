import Foundation

/// The memory of an implementation's processes as the kernel sees it: the resident and the
/// proportional set size of every process of a process group (an adapter and whatever it
/// started), from `/proc/PID/stat`, `/proc/PID/status` and `/proc/PID/smaps_rollup`.
///
/// The resident size counts pages a runtime keeps after it has freed objects, so it is the
/// measure of last resort: an adapter that declares the `memory` capability reports its own
/// heap in use after a collection instead (docs/ADAPTER-PROTOCOL.md).
enum ProcessMemory {
  struct Reading: Sendable, Hashable {
    /// Resident set size, bytes (`VmRSS`).
    var resident: Int64
    /// Proportional set size, bytes (`Pss` of `smaps_rollup`), when the kernel gives it.
    var proportional: Int64?
    /// Processes counted.
    var processes: Int
  }

  /// The memory of the processes whose process group is `group`, or nil when none runs.
  static func group(_ group: pid_t) -> Reading? {
    var reading = Reading(resident: 0, proportional: 0, processes: 0)
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in entries where entry.first?.isNumber == true && entry.allSatisfy(\.isNumber) {
      guard let pid = pid_t(entry), processGroup(of: pid) == group,
        let rss = kibibytes("VmRSS", in: "/proc/\(pid)/status")
      else { continue }
      reading.resident += rss * 1024
      reading.processes += 1
      if let pss = kibibytes("Pss", in: "/proc/\(pid)/smaps_rollup"), let sum = reading.proportional {
        reading.proportional = sum + pss * 1024
      } else {
        reading.proportional = nil
      }
    }
    return reading.processes > 0 ? reading : nil
  }

  /// Field 5 of `/proc/PID/stat` (after the command name, which may hold spaces and parentheses).
  static func processGroup(of pid: pid_t) -> pid_t? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // state ppid pgrp ...
    return fields.count > 2 ? pid_t(fields[2]) : nil
  }

  /// The value in kB of a `Name:   123 kB` line.
  static func kibibytes(_ name: String, in path: String) -> Int64? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
      let parts = line.dropFirst(name.count + 1).split(separator: " ")
      guard let value = parts.first.flatMap({ Int64($0) }), value >= 0, value < Int64.max / 2048 else { return nil }
      return value
    }
    return nil
  }
}
