// Durable checkpoints of scattered dirty pages: PageState's commit + checkpoint next to LMDB committing
// the same pages (key = page index, 8 bytes big-endian; value = the 4 KiB page) in one write transaction
// with LMDB's default, durable flags (synced on commit).
//
// Each iteration writes K new distinct page indices, uniform below 16·K and ascending (later iterations
// mix updates and inserts), with non-constant contents. Generating the pages (and, for PageState,
// applying them to the heap) is not measured. Files live in a fresh directory under /tmp per benchmark,
// removed by its teardown.
import Benchmark
import CLMDB
import Foundation
import PageState
import SystemPackage

/// Dirty pages per iteration, K.
let dirtyCounts = [4096, 65_536]

/// The throughput metric: pages written per second over the measured region. (The built-in `.throughput`
/// counts whole iterations per second, too coarse for iterations of about a second.)
let pagesPerSecond = BenchmarkMetric.custom("pages/s", polarity: .prefersLarger, useScalingFactor: false)

/// `count` distinct page indices, uniform below `16 * count`, ascending.
func scatteredIndices(_ count: Int) -> [PageIndex] {
    var indices = Set<PageIndex>(minimumCapacity: count)
    while indices.count < count { indices.insert(PageIndex.random(in: 0..<PageIndex(16 * count))) }
    return indices.sorted()
}

/// Fills a page with words that depend on its index, the iteration and their offset.
func fill(_ bytes: UnsafeMutableRawBufferPointer, index: PageIndex, iteration: UInt64) {
    for offset in stride(from: 0, to: Page.size, by: 8) {
        bytes.storeBytes(of: index &* 31 &+ iteration &+ UInt64(offset), toByteOffset: offset, as: UInt64.self)
    }
}

/// Runs `body` as the measured region and records its pages per second.
func measure(_ benchmark: Benchmark, pages: Int, _ body: () throws -> Void) rethrows {
    benchmark.startMeasurement()
    let start = ContinuousClock.now
    try body()
    let elapsed = start.duration(to: .now)
    benchmark.stopMeasurement()
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    benchmark.measurement(pagesPerSecond, Int((Double(pages) / seconds).rounded()))
}

/// Writes back what earlier benchmarks left (dirty pages; freed blocks, which a file system mounted with
/// `discard` trims at its next commit), so that no benchmark's syncs pay for another's files.
func settleDevice() {
    sync()
}

/// A fresh, not yet created directory under /tmp.
func scratchDirectory(_ name: String) -> FilePath {
    FilePath("/tmp/pagestate-bench-\(name)-\(UInt64.random(in: 0...UInt64.max))")
}

/// A state manager (foreground flushes) and the heap of guest 1, which grows by K pages per height.
final class PageStateFixture: @unchecked Sendable {
    let manager: StateManager
    var heap: PageMap
    var height: Height = 0

    init(directory: FilePath) throws {
        settleDevice()
        var options = StateManager.Options()
        options.flushInBackground = false
        manager = try StateManager(directory: directory, options: options)
        heap = PageMap(allocator: manager.allocator)
    }
}

struct LMDBError: Error, CustomStringConvertible {
    let code: Int32
    var description: String { String(cString: mdb_strerror(code)) }
}

func check(_ code: Int32) throws(LMDBError) {
    if code != MDB_SUCCESS { throw LMDBError(code: code) }
}

/// An LMDB environment with default flags (durable commits) and its unnamed database.
final class LMDBFixture: @unchecked Sendable {
    let environment: OpaquePointer
    let database: MDB_dbi
    var iteration: UInt64 = 0

    init(directory: FilePath) throws {
        settleDevice()
        try FileManager.default.createDirectory(atPath: directory.string, withIntermediateDirectories: false)
        var created: OpaquePointer?
        try check(mdb_env_create(&created))
        environment = created!
        do {
            try check(mdb_env_set_mapsize(environment, 8 << 30))
            try check(mdb_env_open(environment, directory.string, 0, 0o644))
            let transaction = try Self.begin(environment)
            var database = MDB_dbi()
            try check(mdb_dbi_open(transaction, nil, 0, &database))
            try check(mdb_txn_commit(transaction))
            self.database = database
        } catch {
            mdb_env_close(environment)
            throw error
        }
    }

    deinit { mdb_env_close(environment) }

    /// Begins a write transaction.
    static func begin(_ environment: OpaquePointer) throws(LMDBError) -> OpaquePointer {
        var transaction: OpaquePointer?
        try check(mdb_txn_begin(environment, nil, 0, &transaction))
        return transaction!
    }

    /// Puts `pages` (consecutive 4 KiB pages) under `indices` in one write transaction and commits it.
    func commit(_ indices: [PageIndex], pages: UnsafeRawBufferPointer) throws(LMDBError) {
        let transaction = try Self.begin(environment)
        do {
            for (position, index) in indices.enumerated() {
                var key = index.bigEndian
                try withUnsafeMutableBytes(of: &key) { (keyBytes) throws(LMDBError) in
                    var keyValue = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
                    var pageValue = MDB_val(mv_size: Page.size, mv_data: UnsafeMutableRawPointer(mutating: pages.baseAddress! + position * Page.size))
                    try check(mdb_put(transaction, database, &keyValue, &pageValue, 0))
                }
            }
        } catch {
            mdb_txn_abort(transaction)
            throw error
        }
        try check(mdb_txn_commit(transaction))
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, pagesPerSecond],
        warmupIterations: 1,
        maxDuration: .seconds(10),
        maxIterations: 20
    )

    for count in dirtyCounts {
        // commit + checkpoint of a height whose only change is K scattered pages applied to guest 1's heap.
        let pageStateDirectory = scratchDirectory("checkpoint-\(count)")
        Benchmark("PageState checkpoint \(count)") { benchmark, fixture in
            fixture.height += 1
            let height = fixture.height
            let allocator = fixture.manager.allocator
            fixture.heap.apply(PageDelta(try scatteredIndices(count).map { index in
                (index: index, page: try allocator.allocate { fill($0, index: index, iteration: height) })
            }))
            let state = ReplicatedState(guests: [1: GuestState(memories: ["heap": fixture.heap])])
            try measure(benchmark, pages: count) {
                try fixture.manager.commit(height: height, state: state)
                try fixture.manager.checkpoint(height: height)
            }
        } setup: {
            try PageStateFixture(directory: pageStateDirectory)
        } teardown: {
            try? FileManager.default.removeItem(atPath: pageStateDirectory.string)
        }

        // One write transaction putting K scattered pages, then mdb_txn_commit.
        let lmdbDirectory = scratchDirectory("lmdb-\(count)")
        Benchmark("LMDB commit \(count)") { benchmark, fixture in
            fixture.iteration += 1
            let indices = scatteredIndices(count)
            let pages = UnsafeMutableRawBufferPointer.allocate(byteCount: count * Page.size, alignment: Page.size)
            defer { pages.deallocate() }
            for (position, index) in indices.enumerated() {
                fill(UnsafeMutableRawBufferPointer(rebasing: pages[position * Page.size..<(position + 1) * Page.size]),
                     index: index, iteration: fixture.iteration)
            }
            try measure(benchmark, pages: count) {
                try fixture.commit(indices, pages: UnsafeRawBufferPointer(pages))
            }
        } setup: {
            try LMDBFixture(directory: lmdbDirectory)
        } teardown: {
            try? FileManager.default.removeItem(atPath: lmdbDirectory.string)
        }
    }
}
