import Foundation
import PageStateKernel

/// The result of one `pagestate bench` suite: figures measured in one run, side by side.
public struct BenchReport: Sendable {
    public var suite: String
    /// Figure name → value; names end in their unit (`_per_second`, `_ns`, `_ratio`, ...).
    public var figures: [String: Double] = [:]
    public var notes: [String] = []

    public init(suite: String) { self.suite = suite }

    /// Facts about the machine the figures came from.
    public static var machine: [String: String] {
        var machine = ["kernel": KernelFeatures.probe().kernelVersion,
                       "cores": String(ProcessInfo.processInfo.activeProcessorCount),
                       "build": isOptimized ? "release" : "debug"]
        if let cpu = try? readProcFile("/proc/cpuinfo")
            .split(separator: "\n").first(where: { $0.hasPrefix("model name") })?
            .split(separator: ":", maxSplits: 1).last {
            machine["cpu"] = cpu.trimmingCharacters(in: .whitespaces)
        }
        return machine
    }

    public static var isOptimized: Bool {
        #if DEBUG
        false
        #else
        true
        #endif
    }

    /// One report whose figures are the medians of `reports`' figures (all from the same suite).
    public static func median(of reports: [BenchReport]) -> BenchReport {
        guard var combined = reports.first, reports.count > 1 else { return reports[0] }
        for name in combined.figures.keys {
            let values = reports.compactMap { $0.figures[name] }.sorted()
            combined.figures[name] = values[values.count / 2]
        }
        combined.notes.append("each figure is the median of \(reports.count) runs of the whole suite")
        return combined
    }

    /// `{"suite": ..., "machine": {...}, "figures": {...}, "notes": [...]}` with sorted keys.
    public func json() throws -> String {
        let object: [String: Any] = ["suite": suite, "machine": Self.machine, "figures": figures, "notes": notes]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }

    /// Aligned `name  value` lines followed by the notes.
    public func table() -> String {
        let width = figures.keys.map(\.count).max() ?? 0
        var lines = ["suite \(suite) (\(Self.machine.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))"]
        for (name, value) in figures.sorted(by: { $0.key < $1.key }) {
            lines.append(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + Self.format(value))
        }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }

    private static func format(_ value: Double) -> String {
        if value >= 1_000_000 { return String(format: "%.2f M", value / 1_000_000) }
        if value >= 100 { return String(format: "%.0f", value) }
        return String(format: "%.3f", value)
    }
}

/// Times closures with the monotonic clock.
enum Stopwatch {
    /// Median seconds of `repetitions` runs of `body`.
    static func median(repetitions: Int = 5, _ body: () -> Void) -> Double {
        median(repetitions: repetitions) { () } _: { body() }
    }

    /// Median seconds of `repetitions` runs of `body`, each given what an untimed `setup` made.
    static func median<Input>(repetitions: Int, setup: () -> Input, _ body: (Input) -> Void) -> Double {
        let clock = ContinuousClock()
        var samples = (0..<repetitions).map { _ in
            let input = setup()
            let elapsed = clock.measure { body(input) }
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}
