import CPageState
@testable import PageStateKernel
import PropertyChecking
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A run of segments at consecutive file offsets, as a generated input.
struct SegmentBlock: Sendable, CustomStringConvertible {
    /// Up to 1,300 segments: more than IOV_MAX in one run, and, reversed, more runs than a ring's depth.
    var count: Int
    /// Bytes between the previous block's end and this block's start; 0 joins the two into one run.
    var gap: Int
    /// 4,096-byte segments, or lengths in 0..<6,000 (about one in eight zero).
    var wholePages: Bool
    /// Segments follow each other in memory (one buffer per run), or are scattered over `source`.
    var contiguousInMemory: Bool
    /// Listed last to first: no two neighbours in the list are contiguous in the file.
    var reversed: Bool
    var seed: UInt64

    static let generator = zip(
        Gen.oneOf(Gen.int(in: 0...8), Gen.int(in: 1000...1300)), Gen.oneOf(Gen.always(0), Gen.int(in: 1...20_000)),
        Gen.bool, Gen.bool, Gen.bool(0.25), Gen.uint64()
    ).map { count, gap, wholePages, contiguous, reversed, seed in
        SegmentBlock(count: count, gap: gap, wholePages: wholePages, contiguousInMemory: contiguous,
                     reversed: reversed, seed: seed)
    }

    var description: String {
        "\(count) \(wholePages ? "pages" : "pieces") after \(gap) B, \(contiguousInMemory ? "contiguous" : "scattered")"
            + "\(reversed ? ", reversed" : ""), seed \(seed)"
    }
}

/// Where one segment's bytes come from (an offset in `source`) and go (a file offset).
struct Placement: Sendable {
    var file: Int
    var source: Int
    var length: Int
}

/// SplitMix64's finalizer: deterministic pseudo-random bits.
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// 8 MiB of pseudo-random bytes that segments are cut from.
let source: [UInt8] = (0..<UInt64(1 << 20)).map(mix).withUnsafeBytes { Array($0) }

extension [SegmentBlock] {
    /// Lays the blocks out one after another in the file.
    var placements: [Placement] {
        var placements: [Placement] = []
        var end = 0
        for block in self {
            let lengths = (0..<block.count).map { index in
                let bits = mix(block.seed ^ UInt64(index))
                return block.wholePages ? 4096 : bits % 8 == 0 ? 0 : Int((bits >> 3) % 6000)
            }
            var cursor = Int(mix(~block.seed) % UInt64(source.count - lengths.reduce(0, +) + 1))
            var run: [Placement] = []
            var file = end + block.gap
            for (index, length) in lengths.enumerated() {
                let scattered = Int(mix(block.seed &+ UInt64(index) << 32) % UInt64(source.count - length + 1))
                run.append(Placement(file: file, source: block.contiguousInMemory ? cursor : scattered, length: length))
                cursor += length
                file += length
            }
            end = file
            placements += block.reversed ? run.reversed() : run
        }
        return placements
    }
}

/// A new unnamed file in /tmp (a real file system, so fsync does real work).
func temporaryFile() throws -> FileDescriptor {
    try FileDescriptor.unnamedFile(in: "/tmp")
}

/// Every byte of a file.
func contents(of file: FileDescriptor) throws -> [UInt8] {
    let size = Int(try file.seek(offset: 0, from: .end))
    return try [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        while count < size {
            let read = try file.read(fromAbsoluteOffset: Int64(count), into: UnsafeMutableRawBufferPointer(
                UnsafeMutableBufferPointer(rebasing: buffer[count...])))
            guard read > 0 else { throw Errno.ioError }
            count += read
        }
    }
}

/// The first index where two byte arrays differ (one's end counts), or nil when they are equal.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    let common = min(a.count, b.count)
    let equalPrefix = a.withUnsafeBytes { a in b.withUnsafeBytes { b in common == 0 || memcmp(a.baseAddress!, b.baseAddress!, common) == 0 } }
    if equalPrefix { return a.count == b.count ? nil : common }
    return (0..<common).first { a[$0] != b[$0] }
}

/// Writes the generated blocks (plus a zero-length segment far beyond them, which must not extend the
/// file) with each writer into a new file, and expects every file to equal a byte-array model.
func expectWritesMatchTheModel(_ writers: [any FileWriter], blocks: [SegmentBlock], sync: Bool) throws {
    let placements = blocks.placements
    let size = placements.lazy.filter { $0.length > 0 }.map { $0.file + $0.length }.max() ?? 0
    var model = [UInt8](repeating: 0, count: size)
    model.withUnsafeMutableBytes { model in
        source.withUnsafeBytes { source in
            for placement in placements where placement.length > 0 {
                (model.baseAddress! + placement.file).copyMemory(from: source.baseAddress! + placement.source,
                                                                 byteCount: placement.length)
            }
        }
    }
    var first: [UInt8]?
    for writer in writers {
        let file = try temporaryFile()
        defer { try? file.close() }
        try source.withUnsafeBytes { source in
            var segments = placements.map {
                WriteSegment(offset: UInt64($0.file),
                             bytes: UnsafeRawBufferPointer(rebasing: source[$0.source..<$0.source + $0.length]))
            }
            segments.append(WriteSegment(offset: 1 << 40, bytes: UnsafeRawBufferPointer(start: nil, count: 0)))
            try writer.write(segments, to: file, sync: sync)
        }
        let written = try contents(of: file)
        #expect(written.count == model.count, "\(writer.kind) file size")
        #expect(firstDifference(written, model) == nil, "\(writer.kind) differs from the model")
        if let first { #expect(firstDifference(written, first) == nil, "\(writer.kind) differs from \(writers[0].kind)") }
        first = first ?? written
    }
}

/// fsync through `writer` works on a file and a directory, and fails with the kernel's error elsewhere.
func expectSyncWorks(_ writer: any FileWriter) throws {
    let directory = try FileDescriptor.open("/tmp", .readOnly, options: .directory)
    defer { try? directory.close() }
    try writer.sync(directory)
    let file = try temporaryFile()
    defer { try? file.close() }
    try [UInt8](repeating: 1, count: 4096).withUnsafeBytes { bytes in
        try writer.write([WriteSegment(offset: 8192, bytes: bytes)], to: file, sync: true)
    }
    try writer.sync(file)
    #expect(try file.seek(offset: 0, from: .end) == 12288)
    let pipe = try FileDescriptor.pipe()
    defer { try? pipe.readEnd.close(); try? pipe.writeEnd.close() }
    #expect(throws: Errno.invalidArgument) { try writer.sync(pipe.writeEnd) }
    // -1 is never open; a closed descriptor's number could be reused by a test running in parallel.
    #expect(throws: Errno.badFileDescriptor) { try writer.sync(FileDescriptor(rawValue: -1)) }
}

/// Failed writes throw the kernel's error (or EINVAL for offsets beyond Int64.max), write nothing
/// out of place, and leave the writer usable.
func expectErrorsAreTyped(_ writer: any FileWriter) throws {
    let file = try temporaryFile()
    defer { try? file.close() }
    let readOnly = try FileDescriptor.open("/proc/self/fd/\(file.rawValue)", .readOnly)
    defer { try? readOnly.close() }
    let page = [UInt8](repeating: 0xA5, count: 4096)
    try page.withUnsafeBytes { bytes in
        let segment = WriteSegment(offset: 0, bytes: bytes)
        #expect(throws: Errno.badFileDescriptor) { try writer.write([segment], to: readOnly, sync: false) }
        #expect(throws: Errno.badFileDescriptor) { try writer.write([segment], to: FileDescriptor(rawValue: -1), sync: true) }
        for offset in [UInt64(Int64.max), UInt64.max] {  // io_uring reads offset -1 as "the file position"
            let beyond = WriteSegment(offset: offset, bytes: bytes)
            #expect(throws: Errno.invalidArgument) { try writer.write([segment, beyond], to: file, sync: false) }
        }
        #expect(try file.seek(offset: 0, from: .end) == 0)
        try writer.write([segment], to: file, sync: true)
    }
    #expect(try contents(of: file) == page)
}

let ioUringAvailability = KernelFeatures.probe()

@Suite struct PwriteFileWriterTests {
    @Test(.shrinking)
    func writesMatchAByteArrayModel() async {
        await checkProperty(count: 60, input: SegmentBlock.generator.array(of: 0...6), Gen.bool) { blocks, sync in
            try expectWritesMatchTheModel([PwriteFileWriter()], blocks: blocks, sync: sync)
        }
    }

    @Test func syncWorksOnAFileAndADirectory() throws {
        try expectSyncWorks(PwriteFileWriter())
    }

    @Test func errorsAreTypedAndLeaveNothingOutOfPlace() throws {
        try expectErrorsAreTyped(PwriteFileWriter())
    }
}

@Suite(.enabled(if: ioUringAvailability.ioUring,
                "io_uring cannot be set up here: \(ioUringAvailability.details[.ioUring] ?? "unknown reason")"))
struct UringFileWriterTests {
    @Test(.shrinking)
    func writesMatchTheModelAndPwriteWithAnyRingDepth() async throws {
        let writers: [any FileWriter] = [try UringFileWriter(), try UringFileWriter(queueDepth: 3), PwriteFileWriter()]
        await checkProperty(count: 60, input: SegmentBlock.generator.array(of: 0...6), Gen.bool) { blocks, sync in
            try expectWritesMatchTheModel(writers, blocks: blocks, sync: sync)
        }
    }

    @Test func syncWorksOnAFileAndADirectory() throws {
        try expectSyncWorks(try UringFileWriter())
    }

    @Test func errorsAreTypedAndLeaveNothingOutOfPlace() throws {
        try expectErrorsAreTyped(try UringFileWriter())
    }

    @Test func threadsShareOneRing() async throws {
        let writer = try UringFileWriter(queueDepth: 4)
        try await withThrowingTaskGroup { group in
            for task in 0..<8 {
                group.addTask {
                    let file = try temporaryFile()
                    defer { try? file.close() }
                    let pages = (0..<64 * 4096).map { UInt8(truncatingIfNeeded: task * 64 + $0 / 4096) }
                    try pages.withUnsafeBytes { pages in
                        // Backwards, so each page is its own write: the tasks' requests interleave.
                        let segments = (0..<64).reversed().map { (index: Int) -> WriteSegment in
                            let start = index * 4096
                            return WriteSegment(offset: UInt64(start), bytes: UnsafeRawBufferPointer(rebasing: pages[start..<start + 4096]))
                        }
                        for _ in 0..<20 { try writer.write(segments, to: file, sync: false) }
                    }
                    #expect(try contents(of: file) == pages)
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func bestIsIoUringUnlessPwriteIsRequested() throws {
        #expect(FileWriters.best(requested: nil).kind == .ioUring)
        #expect(FileWriters.best(requested: "io_uring").kind == .ioUring)
        #expect(FileWriters.best(requested: "something else").kind == .ioUring)
        #expect(FileWriters.best(requested: "pwrite").kind == .pwrite)
        let requested = getenv(FileWriters.environmentVariable).map { String(cString: $0) }
        #expect(FileWriters.best().kind == (requested == "pwrite" ? .pwrite : .ioUring))
        for kind in FileWriterKind.allCases { #expect(try FileWriters.make(kind).kind == kind) }
    }
}

@Suite struct WritePlanTests {
    /// The runs `withWritePlan` makes, as (file offset, buffer lengths).
    func plan(_ segments: [WriteSegment]) throws -> [(offset: UInt64, lengths: [Int])] {
        try withWritePlan(segments) { runs in
            runs.map { run in (run.offset, UnsafeBufferPointer(start: run.iov, count: Int(run.iovcnt)).map(\.iov_len)) }
        }
    }

    @Test func coalescesAlongTheFileAndMemory() throws {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096 * 2100, alignment: 4096)
        defer { memory.deallocate() }
        func page(_ index: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: memory[index * 4096..<(index + 1) * 4096])
        }
        // Contiguous in both: one buffer. Zero-length segments vanish without splitting the run.
        let both = (0..<10).map { WriteSegment(offset: UInt64($0 * 4096), bytes: page($0)) }
            + [WriteSegment(offset: 7, bytes: UnsafeRawBufferPointer(start: nil, count: 0))]
            + [WriteSegment(offset: 40960, bytes: page(10))]
        let coalesced = try plan(both)
        #expect(coalesced.count == 1 && coalesced[0].offset == 0 && coalesced[0].lengths == [45056])
        // Contiguous in the file only: IOV_MAX buffers per run.
        let scattered = (0..<2050).map { WriteSegment(offset: UInt64($0 * 4096), bytes: page(2049 - $0)) }
        #expect(try plan(scattered).map(\.offset) == [0, 1024 * 4096, 2048 * 4096])
        #expect(try plan(scattered).map(\.lengths.count) == [1024, 1024, 2])
        // Contiguous in memory only: one run per segment.
        let backwards = (0..<3).map { WriteSegment(offset: UInt64((2 - $0) * 4096), bytes: page($0)) }
        #expect(try plan(backwards).map(\.offset) == [8192, 4096, 0])
    }

    @Test(.shrinking)
    func advancingAfterShortWritesLeavesExactlyTheRest() async {
        await checkProperty(input: Gen.int(in: 1...5000).array(of: 1...20), Gen.int(in: 1...9000).array(of: 1...40)) {
            lengths, writes in
            let bytes = (0..<lengths.reduce(0, +)).map { UInt8(truncatingIfNeeded: mix(UInt64($0))) }
            var starts = [0]
            for length in lengths.dropLast() { starts.append(starts.last! + length) }
            var copy = bytes
            copy.withUnsafeMutableBytes { all in
                var iov = zip(starts, lengths).map { iovec(iov_base: all.baseAddress! + $0, iov_len: $1) }
                iov.withUnsafeMutableBufferPointer { iov in
                    var run = ps_write_run(iov: iov.baseAddress, iovcnt: Int32(iov.count), offset: 100)
                    var done = 0
                    for write in writes {
                        let written = min(write, bytes.count - done)
                        let more = ps_write_run_advance(&run, written)
                        done += written
                        #expect(more == (done < bytes.count ? 1 : 0))
                        #expect(run.offset == UInt64(100 + done))
                        let rest = UnsafeBufferPointer(start: run.iov, count: Int(run.iovcnt))
                            .flatMap { UnsafeRawBufferPointer(start: $0.iov_base, count: $0.iov_len) }
                        #expect(rest == Array(bytes[done...]))
                        if more == 0 { break }
                    }
                    #expect(ps_write_run_advance(&run, 0) == -EIO)
                }
            }
        }
    }
}
