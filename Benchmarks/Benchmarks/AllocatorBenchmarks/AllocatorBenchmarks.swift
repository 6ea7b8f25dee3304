// Microbenchmarks of PageAllocator: allocation, release, resolving a location, reclaiming.
import Benchmark
import PageState

/// Pages that stay alive across iterations, plus a cursor, for the benchmarks that need them.
final class LivePages: @unchecked Sendable {
    let allocator: PageAllocator
    var pages: [Page]
    var cursor = 0

    init(allocator: PageAllocator, pages: [Page] = []) {
        self.allocator = allocator
        self.pages = pages
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 3,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    let source = [UInt8](repeating: 0xA5, count: Page.size)

    // One page allocated (4 KiB copied in) and dropped per operation. The released slot is reused by the
    // next allocation, so this is the steady-state fast path; reported per page (scaling factor 1000).
    Benchmark(
        "Allocator.allocate+release (copy 4 KiB)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark, allocator in
        source.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                blackHole(try! allocator.allocate(copying: bytes))
            }
        }
    } setup: {
        try PageAllocator()
    }

    // 1024 pages allocated and kept alive (measured), then all released (not measured). Reported per
    // batch of 1024; from the second batch on, slots come from the released list.
    Benchmark(
        "Allocator.allocate batch of 1024 (release unmeasured)",
        configuration: .init(maxIterations: 2_000)
    ) { (benchmark: Benchmark, state: LivePages) in
        source.withUnsafeBytes { bytes in
            for _ in 0..<1024 {
                state.pages.append(try! state.allocator.allocate(copying: bytes))
            }
        }
        benchmark.stopMeasurement()
        state.pages.removeAll(keepingCapacity: true)
    } setup: { () throws -> LivePages in
        let state = LivePages(allocator: try PageAllocator())
        state.pages.reserveCapacity(1024)
        return state
    }

    // `page(at:)` on locations of 4096 live pages, round robin: validates the location and returns a
    // new counted reference (dropped again right away). Reported per call (scaling factor 1000).
    Benchmark(
        "Allocator.page(at:) resolve one location",
        configuration: .init(scalingFactor: .kilo)
    ) { (benchmark: Benchmark, state: ResolveFixture) in
        let places = state.places
        var cursor = state.live.cursor
        for _ in benchmark.scaledIterations {
            blackHole(try! state.live.allocator.page(at: places[cursor]))
            cursor = (cursor + 1) & (places.count - 1)
        }
        state.live.cursor = cursor
    } setup: { () throws -> ResolveFixture in
        let allocator = try PageAllocator()
        var pages: [Page] = []
        for i in 0..<4096 {
            pages.append(try allocator.allocate(copying: [UInt8(truncatingIfNeeded: i)]))
        }
        return ResolveFixture(live: LivePages(allocator: allocator, pages: pages),
                              places: pages.map(\.location))
    }

    // `resolve(_:)` of 1024 received locations (indices 0..<1024) into a PageDelta. Reported per call.
    Benchmark(
        "Allocator.resolve 1024 locations into a delta",
        configuration: .init(maxIterations: 5_000)
    ) { (benchmark: Benchmark, state: ResolveFixture) in
        let delta = try! state.live.allocator.resolve(state.locations)
        blackHole(delta.count)
        withExtendedLifetime(delta) { benchmark.stopMeasurement() }
    } setup: { () throws -> ResolveFixture in
        let allocator = try PageAllocator()
        var pages: [Page] = []
        for i in 0..<1024 {
            pages.append(try allocator.allocate(copying: [UInt8(truncatingIfNeeded: i)]))
        }
        let locations = pages.enumerated().map { PageLocation(index: PageIndex($0.offset), place: $0.element.location) }
        return ResolveFixture(live: LivePages(allocator: allocator, pages: pages), places: [], locations: locations)
    }

    // `reclaimReleasedPages()` with 4096 released pages: punches their storage out of the backing file.
    // Allocating (and so faulting in) and releasing the 4096 pages is not measured; automatic batch
    // reclaim is switched off so the pages wait for the explicit call. Reported per call (4096 pages).
    Benchmark(
        "Allocator.reclaim 4096 released pages",
        configuration: .init(warmupIterations: 1, maxDuration: .seconds(3), maxIterations: 300)
    ) { (benchmark: Benchmark, state: LivePages) in
        source.withUnsafeBytes { bytes in
            for _ in 0..<4096 {
                state.pages.append(try! state.allocator.allocate(copying: bytes))
            }
        }
        state.pages.removeAll(keepingCapacity: true)
        benchmark.startMeasurement()
        state.allocator.reclaimReleasedPages()
    } setup: { () throws -> LivePages in
        let state = LivePages(allocator: try PageAllocator(options: .init(reclaimBatchPages: .max)))
        state.pages.reserveCapacity(4096)
        return state
    }
}

final class ResolveFixture: @unchecked Sendable {
    let live: LivePages
    let places: [PageLocation.Place]
    let locations: [PageLocation]

    init(live: LivePages, places: [PageLocation.Place], locations: [PageLocation] = []) {
        self.live = live
        self.places = places
        self.locations = locations
    }
}
