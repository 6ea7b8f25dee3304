import Foundation
import PageStateKernel
import SystemPackage

/// Processor time used by DAMON's kernel threads (`kdamond.N`). With physical-address monitoring,
/// each sampled page is checked in every mapping of it (a reverse-map walk), so on a machine running
/// DAMON its cost grows with the number of live workers sharing the worker binary's pages: at 1,000
/// it took up to ~60% of a processor here at a 100x sampling rate (performance.md, session 27).
/// Each report carries its share as `kdamond_cpu_percent`.
enum DamonThreads {
    /// Clock ticks (`USER_HZ`, as in /proc/stat) used so far by every thread named `kdamond.*`;
    /// 0 where there is none, nil where /proc cannot be listed.
    ///
    /// - Complexity: O(processes): one read of /proc/N/comm per process, plus /proc/N/stat per
    ///   kdamond thread.
    static func cpuTicks() -> UInt64? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        var ticks: UInt64 = 0
        for entry in entries where entry.first?.isNumber == true {
            guard let comm = try? readProcFile(FilePath("/proc/\(entry)/comm")), comm.hasPrefix("kdamond"),
                  let stat = try? readProcFile(FilePath("/proc/\(entry)/stat")) else { continue }
            ticks += processorTicks(stat: stat) ?? 0
        }
        return ticks
    }

    /// `utime + stime` from the text of /proc/N/stat (fields 14 and 15; the name in field 2 may hold
    /// spaces and parentheses, so fields are counted from its last closing parenthesis).
    static func processorTicks(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")  // fields 3, 4, …
        guard fields.count >= 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }
}
