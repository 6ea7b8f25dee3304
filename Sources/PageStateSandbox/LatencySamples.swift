/// The most recent latencies, in nanoseconds, for percentiles.
struct LatencySamples {
    private(set) var samples: [UInt64] = []
    private var next = 0
    static let capacity = 4096

    /// - Complexity: O(1) amortized.
    mutating func add(nanoseconds sample: UInt64) {
        if samples.count < Self.capacity { samples.append(sample) } else { samples[next] = sample }
        next = (next + 1) % Self.capacity
    }

    /// Median and 99th percentile in microseconds (0 when empty).
    func percentiles() -> (Double, Double) {
        guard !samples.isEmpty else { return (0, 0) }
        let sorted = samples.sorted()
        func microseconds(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]) / 1e3 }
        return (microseconds(0.5), microseconds(0.99))
    }
}
