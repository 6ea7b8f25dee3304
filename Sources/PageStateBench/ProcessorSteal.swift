import Foundation
import PageStateKernel

/// The share of processor time the hypervisor gave to others while a suite ran (`steal` in the
/// first line of /proc/stat). On these VMs it reaches a third during runs, and the slowest samples
/// (spawn p99s above all) land in those stretches, so each report carries it as `cpu_steal_percent`.
enum ProcessorSteal {
    struct Sample {
        var steal: UInt64
        var total: UInt64
    }

    /// The processor time counters since boot, or nil where /proc/stat says nothing usable.
    static func sample() -> Sample? {
        guard let text = try? readProcFile("/proc/stat"),
              let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user]
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard fields.count == 8 else { return nil }
        return Sample(steal: fields[7], total: fields.reduce(0, +))
    }

    /// Steal as a percentage of all processor time between two samples.
    static func percent(from start: Sample, to end: Sample) -> Double? {
        guard end.total > start.total, end.steal >= start.steal else { return nil }
        return Double(end.steal - start.steal) * 100 / Double(end.total - start.total)
    }
}

extension BenchReport {
    /// Runs a suite and adds what else used the machine meanwhile: `cpu_steal_percent`, the
    /// hypervisor's share of processor time, and `kdamond_cpu_percent`, DAMON's (`DamonThreads`).
    public static func measuringMachineLoad(_ suite: () throws -> BenchReport) rethrows -> BenchReport {
        let start = ProcessorSteal.sample(), damonStart = DamonThreads.cpuTicks()
        var report = try suite()
        let damonEnd = DamonThreads.cpuTicks()
        guard let start, let end = ProcessorSteal.sample() else { return report }
        if let percent = ProcessorSteal.percent(from: start, to: end) {
            report.figures["cpu_steal_percent"] = percent
            report.notes.append("cpu_steal_percent: the hypervisor's share of processor time during the run (/proc/stat); figures from runs where it is high are not comparable")
        }
        // A kdamond that stopped during the run takes its ticks along: no figure then.
        if let damonStart, let damonEnd, damonEnd >= damonStart, end.total > start.total {
            report.figures["kdamond_cpu_percent"] = Double(damonEnd - damonStart) * 100 / Double(end.total - start.total)
            report.notes.append("kdamond_cpu_percent: DAMON's kernel threads' share of all processors' time together during the run (58% of one of two processors shows as 29); its reverse-map walks grow with the number of live workers")
        }
        return report
    }
}
