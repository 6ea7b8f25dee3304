import Crypto
import Foundation
import PageStateKernel
import PageStateMemory
import PageStateStore
import SystemPackage

/// `pagestate bench checkpoint`: flushing scattered dirty pages into an overlay and a durable
/// checkpoint, through io_uring and through pwrite, next to the device floor — a sequential write
/// and fsync of the same bytes — measured in the same run; manifest hashing; loading many guests.
public enum CheckpointSuite {
    public static func run(directory: FilePath, dirtyCounts: [Int] = [4096, 65_536], guests: Int = 10_000, rounds: Int = 5) throws -> BenchReport {
        var report = BenchReport(suite: "checkpoint")
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "pagestate-bench-checkpoint")))
        let kinds = FileWriterKind.allCases.filter { (try? FileWriters.make($0)) != nil }
        let headline = dirtyCounts.max()!
        let best = FileWriters.best().kind == .ioUring ? "uring" : "pwrite"
        for count in dirtyCounts {
            // Rounds interleave the floor and the flushes, so that each round's ratio compares
            // measurements taken moments apart: the device's throughput drifts by 2x over minutes.
            var sequential: [Double] = []
            var direct: [Double] = []
            var flushes: [FileWriterKind: [Double]] = [:]
            for _ in 0..<rounds {
                sequential.append(try sequentialWriteSeconds(bytes: count * Page.size, direct: false, in: directory))
                direct.append(try sequentialWriteSeconds(bytes: count * Page.size, direct: true, in: directory))
                for kind in kinds {
                    flushes[kind, default: []].append(try checkpointSeconds(dirtyPages: count, writer: FileWriters.make(kind), allocator: allocator, in: directory))
                }
            }
            let mebibytes = Double(count * Page.size) / 1_048_576
            report.figures["sequential_mib_per_s_at_\(count)"] = mebibytes / TrackingSuite.middle(sequential)
            report.figures["sequential_direct_mib_per_s_at_\(count)"] = mebibytes / TrackingSuite.middle(direct)
            for kind in kinds {
                let name = kind == .ioUring ? "uring" : "pwrite"
                report.figures["flush_\(name)_mib_per_s_at_\(count)"] = mebibytes / TrackingSuite.middle(flushes[kind]!)
                if name == best {
                    let ratios = zip(sequential, flushes[kind]!).map { $0 / $1 }
                    report.figures["flush_vs_sequential_at_\(count)"] = TrackingSuite.middle(ratios)
                    report.figures["flush_vs_sequential_direct_at_\(count)"] = TrackingSuite.middle(zip(direct, flushes[kind]!).map { $0 / $1 })
                }
            }
        }
        report.figures["flush_mib_per_s"] = report.figures["flush_\(best)_mib_per_s_at_\(headline)"]
        report.figures["sequential_mib_per_s"] = report.figures["sequential_mib_per_s_at_\(headline)"]
        report.figures["flush_vs_sequential"] = report.figures["flush_vs_sequential_at_\(headline)"]
        report.figures["flush_vs_sequential_direct"] = report.figures["flush_vs_sequential_direct_at_\(headline)"]
        report.figures["hash_mib_per_s"] = hashMebibytesPerSecond()
        report.figures["load_\(guests)_guests_ms"] = try loadMilliseconds(guests: guests, allocator: allocator, in: directory)
        report.notes = [
            "flush = commit + checkpoint of a height whose only change is N scattered dirty pages of a 16N-page memory (the second checkpoint: steady state, hashes reused), \(best) is the default writer",
            "sequential = one pwrite of the same bytes into a new file + fsync, the device floor; sequential_direct = the same with O_DIRECT (no page-cache copy), as the flush writes its pages",
            "\(rounds) rounds, each a sequential write then a flush per writer; MiB/s figures are medians of the rounds, flush_vs_sequential the median of the rounds' ratios; files in \(directory)",
        ]
        return report
    }

    /// A new file written with one pwrite loop (with O_DIRECT when `direct`), then fsynced.
    static func sequentialWriteSeconds(bytes: Int, direct: Bool, in directory: FilePath) throws -> Double {
        let path = directory.appending("sequential-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? removeFileEntry(path) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: Page.size)
        defer { buffer.deallocate() }
        for offset in stride(from: 0, to: bytes, by: 8) { buffer.storeBytes(of: UInt64(offset) &* 0x9E37_79B9, toByteOffset: offset, as: UInt64.self) }
        let file = try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate], permissions: .ownerReadWrite)
        defer { try? file.close() }
        if direct { try file.setDirectIO(true) }
        let writer = try FileWriters.make(.pwrite)
        let start = ContinuousClock.now
        try writer.write([WriteSegment(offset: 0, bytes: UnsafeRawBufferPointer(buffer))], to: file, sync: true)
        return seconds(since: start)
    }

    /// The second of two checkpoints of one guest whose heap gets `dirtyPages` scattered pages per height.
    static func checkpointSeconds(dirtyPages: Int, writer: any FileWriter, allocator: PageAllocator, in directory: FilePath) throws -> Double {
        let root = directory.appending("checkpoint-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(atPath: root.string) }
        var options = StateManager.Options()
        options.writer = writer
        options.allocator = allocator
        options.flushInBackground = false
        let manager = try StateManager(directory: root, options: options)
        var heap = PageMap(allocator: allocator)
        var elapsed = 0.0
        for height: Height in 1...2 {
            heap.apply(try scatteredPages(dirtyPages, below: UInt64(dirtyPages * 16), allocator: allocator))
            try manager.commit(height: height, state: ReplicatedState(guests: [1: GuestState(memories: ["heap": heap])]))
            let start = ContinuousClock.now
            try manager.checkpoint(height: height)
            elapsed = seconds(since: start)
        }
        return elapsed
    }

    static func scatteredPages(_ count: Int, below bound: UInt64, allocator: PageAllocator) throws -> PageDelta {
        var indices = Set<PageIndex>()
        while indices.count < count { indices.insert(PageIndex.random(in: 0..<bound)) }
        return PageDelta(try indices.sorted().map { index in
            (index: index, page: try allocator.allocate { bytes in
                for offset in stride(from: 0, to: Page.size, by: 8) { bytes.storeBytes(of: index &* 31 &+ UInt64(offset), toByteOffset: offset, as: UInt64.self) }
            })
        })
    }

    /// SHA-256 (swift-crypto) over 64 MiB, median of 3.
    static func hashMebibytesPerSecond() -> Double {
        let bytes = [UInt8](repeating: 0x5A, count: 64 << 20)
        let seconds = TrackingSuite.median(3) {
            let start = ContinuousClock.now
            _ = bytes.withUnsafeBytes { SHA256.hash(data: $0) }
            return CheckpointSuite.seconds(since: start)
        }
        return 64 / seconds
    }

    /// Checkpoints `guests` guests with one page in each of two memories, then times opening a
    /// manager and loading them (O(files): 2 overlays per guest are opened, checked and mapped).
    static func loadMilliseconds(guests: Int, allocator: PageAllocator, in directory: FilePath) throws -> Double {
        let root = directory.appending("load-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(atPath: root.string) }
        var options = StateManager.Options()
        options.allocator = allocator
        options.flushInBackground = false
        var state = ReplicatedState()
        for guest in 0..<GuestID(guests) {
            var heap = PageMap(allocator: allocator)
            var stable = PageMap(allocator: allocator)
            try heap.write(withUnsafeBytes(of: guest) { Array($0) }, at: 0)
            try stable.write([1, 2, 3], at: 100)
            state.guests[guest] = GuestState(memories: ["heap": heap, "stable": stable], metadata: [UInt8(guest & 0xFF)])
        }
        do {
            let manager = try StateManager(directory: root, options: options)
            try manager.commit(height: 1, state: state)
            try manager.checkpoint(height: 1)
        }
        let start = ContinuousClock.now
        let manager = try StateManager(directory: root, options: options)
        let loaded = try manager.load()
        let milliseconds = seconds(since: start) * 1000
        precondition(loaded.state.guests.count == guests)
        return milliseconds
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double { TrackingSuite.nanoseconds(since: start) / 1e9 }
}
