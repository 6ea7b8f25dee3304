/// The machine's own floor for a paced spawn's tail: a fixed amount of processor work with no memory
/// traffic, started after the same pause as a paced spawn and timed the same way, in the same phases.
/// On these VMs a ~14 µs loop paced 5 ms apart has its p99 2.5-4x its median and differing by up to
/// 1.33x between identical runs, where a ~4.4 µs one stays within 4% (performance.md, session 37):
/// the spawn's p99 ratio is only as steady as this floor's.
struct PacedWorkFloor {
    /// Rounds of the loop that take about the target time on a warm processor.
    let iterations: Int

    /// Calibrated here, now: the median of 101 runs of ~20 µs back to back (the processor warmed
    /// by the first ones), scaled to `target`.
    init(target: Duration) {
        let trial = 16_384
        var times = (0..<101).map { _ in Self.time(iterations: trial) }
        times.sort()
        // At least 0.1 ns per round, whatever the clock said (a 64-bit multiply-add takes ~1).
        let perIteration = max(times[times.count / 2] / Double(trial), 1e-4)
        iterations = max(1, Int(target / .microseconds(1) / perIteration))
    }

    /// One timed run, in milliseconds.
    func measure() -> Double { Self.time(iterations: iterations) / 1000 }

    /// Microseconds that `iterations` rounds took.
    private static func time(iterations: Int) -> Double {
        let start = ContinuousClock.now
        sink &+= work(iterations: iterations, seed: sink)
        return (ContinuousClock.now - start) / .microseconds(1)
    }

    /// Where every run's result goes, so that the optimizer cannot drop the work (one thread only).
    nonisolated(unsafe) private static var sink: UInt64 = 1

    /// A 64-bit linear congruential generator stepped `iterations` times: each step depends on the
    /// last, and no compiler replaces the loop with its closed form.
    @inline(never)
    private static func work(iterations: Int, seed: UInt64) -> UInt64 {
        var state = seed
        for _ in 0..<iterations { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        return state
    }
}
