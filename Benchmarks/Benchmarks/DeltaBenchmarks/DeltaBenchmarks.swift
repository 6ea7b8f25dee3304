// Microbenchmarks of PageDelta: lookups, inserts, union, clone-and-modify, sorted iteration.
//
// Deltas are built in the benchmarks' setup closures (not measured). Every entry points at one of two
// shared pages: PageDelta stores references, so page contents do not matter here.
import Benchmark
import PageState

/// Deterministic generator so every run measures the same indices.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Entries in the large delta: "1 M". Matches `.mega` so per-entry benchmarks can report per entry.
let largeCount = 1_000_000
/// Indices are uniform in 0..<indexSpace.
let indexSpace: PageIndex = 1 << 24
/// Lookup probes: a power of two so the cursor wraps with a mask.
let probeCount = 1 << 20

final class DeltaFixture: @unchecked Sendable {
    let allocator: PageAllocator
    let page: Page
    let other: Page
    /// `largeCount` distinct indices in random order.
    let keys: [PageIndex]
    /// Delta of `keys`, all mapped to `page`.
    let large: PageDelta
    /// `probeCount` uniformly random indices (about 6 % hit `large`).
    let probes: [PageIndex]
    /// `probeCount` indices taken from `keys` (all hit).
    let hits: [PageIndex]
    /// 10 K uniformly random indices mapped to `other`.
    let small: PageDelta
    var cursor = 0

    init(buildLarge: Bool = true) throws {
        var rng = SplitMix64(state: 0x5EED)
        allocator = try PageAllocator()
        page = try allocator.allocate(copying: [1])
        other = try allocator.allocate(copying: [2])

        var seen = Set<PageIndex>(minimumCapacity: largeCount)
        var keys: [PageIndex] = []
        keys.reserveCapacity(largeCount)
        while keys.count < largeCount {
            let index = PageIndex.random(in: 0..<indexSpace, using: &rng)
            if seen.insert(index).inserted { keys.append(index) }
        }
        self.keys = keys

        var large = PageDelta()
        if buildLarge {
            for key in keys { large[key] = page }
            precondition(large.count == largeCount)
        }
        self.large = large

        probes = (0..<probeCount).map { _ in PageIndex.random(in: 0..<indexSpace, using: &rng) }
        hits = (0..<probeCount).map { _ in keys.randomElement(using: &rng)! }

        var small = PageDelta()
        while small.count < 10_000 {
            small[PageIndex.random(in: 0..<indexSpace, using: &rng)] = other
        }
        self.small = small
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    // Subscript reads at uniformly random indices in 0..<2^24 (mostly misses). Per lookup.
    Benchmark(
        "PageDelta.lookup uniform random (1M delta)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark, fixture in
        let delta = fixture.large
        let probes = fixture.probes
        var cursor = fixture.cursor
        var found = 0
        for _ in benchmark.scaledIterations {
            if delta[probes[cursor]] != nil { found &+= 1 }
            cursor = (cursor + 1) & (probeCount - 1)
        }
        fixture.cursor = cursor
        blackHole(found)
    } setup: {
        try DeltaFixture()
    }

    // Subscript reads of indices present in the delta, in random order. Per lookup.
    Benchmark(
        "PageDelta.lookup hit random (1M delta)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark, fixture in
        let delta = fixture.large
        let probes = fixture.hits
        var cursor = fixture.cursor
        for _ in benchmark.scaledIterations {
            blackHole(delta[probes[cursor]])
            cursor = (cursor + 1) & (probeCount - 1)
        }
        fixture.cursor = cursor
    } setup: {
        try DeltaFixture()
    }

    // Building a 1 M-entry delta from empty by random inserts (uniform distinct indices in 0..<2^24).
    // Per insert (scaling factor 1 M = one build per iteration); freeing the result is not measured.
    Benchmark(
        "PageDelta.insert random, build 1M delta",
        configuration: .init(warmupIterations: 1, scalingFactor: .mega, maxDuration: .seconds(4), maxIterations: 15)
    ) { benchmark, fixture in
        let keys = fixture.keys
        let page = fixture.page
        var delta = PageDelta()
        for i in benchmark.scaledIterations {
            delta[keys[i]] = page
        }
        blackHole(delta.count)
        withExtendedLifetime(delta) { benchmark.stopMeasurement() }
    } setup: {
        try DeltaFixture(buildLarge: false)
    }

    // `large.union(small)`: 10 K random entries (newer) merged into the 1 M delta. Per union; freeing
    // the result is not measured.
    Benchmark(
        "PageDelta.union 10K into 1M",
        configuration: .init(maxIterations: 2_000)
    ) { benchmark, fixture in
        let merged = fixture.large.union(fixture.small)
        blackHole(merged.count)
        withExtendedLifetime(merged) { benchmark.stopMeasurement() }
    } setup: {
        try DeltaFixture()
    }

    // Copy the 1 M delta (O(1), shares structure), replace one existing page (copies one path), drop the
    // copy. Per clone+modify (scaling factor 1000).
    Benchmark(
        "PageDelta.clone + modify one page (1M delta)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark, fixture in
        let base = fixture.large
        let other = fixture.other
        let keys = fixture.hits
        var cursor = fixture.cursor
        for _ in benchmark.scaledIterations {
            var copy = base
            copy[keys[cursor]] = other
            blackHole(copy)
            cursor = (cursor + 1) & (probeCount - 1)
        }
        fixture.cursor = cursor
    } setup: {
        try DeltaFixture()
    }

    // Full in-order iteration of the 1 M delta. Per element (scaling factor 1 M = one pass).
    Benchmark(
        "PageDelta.iterate sorted (1M delta)",
        configuration: .init(warmupIterations: 1, scalingFactor: .mega, maxDuration: .seconds(3), maxIterations: 50)
    ) { benchmark, fixture in
        var sum: UInt64 = 0
        var previous: PageIndex = 0
        var sorted = true
        for (index, _) in fixture.large {
            sum &+= index
            sorted = sorted && index >= previous
            previous = index
        }
        blackHole(sum)
        blackHole(sorted)
    } setup: {
        try DeltaFixture()
    }
}
