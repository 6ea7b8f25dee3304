import PageStateKernel
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Direct I/O on a file in /tmp (a real file system; one without O_DIRECT makes the test skip).
@Suite struct DirectIOTests {
    static let supported: Bool = {
        guard let file = try? temporaryFile() else { return false }
        defer { try? file.close() }
        return (try? file.setDirectIO(true)) != nil
    }()

    /// With direct I/O on, a write that is not block-aligned fails with EINVAL and an aligned one lands;
    /// turned off again, any write works. Both writers write whole pages through it, byte for byte.
    @Test(.enabled(if: supported, "needs a /tmp file system that supports O_DIRECT"))
    func alignedWritesBypassThePageCacheAndMisalignedOnesAreRefused() throws {
        let file = try temporaryFile()
        defer { try? file.close() }
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { page.deallocate() }
        for offset in 0..<4096 { page[offset] = UInt8(truncatingIfNeeded: offset &* 7) }

        try file.setDirectIO(true)
        #expect(throws: Errno.invalidArgument) { try file.writeAll(toAbsoluteOffset: 1, [1, 2, 3]) }
        var writers: [any FileWriter] = [PwriteFileWriter()]
        if let uring = try? FileWriters.make(.ioUring) { writers.append(uring) }
        for (index, writer) in writers.enumerated() {
            try writer.write([WriteSegment(offset: UInt64(index * 4096), bytes: UnsafeRawBufferPointer(page))], to: file, sync: false)
        }
        try file.setDirectIO(false)
        try file.writeAll(toAbsoluteOffset: Int64(writers.count * 4096), [1, 2, 3])
        try file.sync()

        let pageBytes = [UInt8](UnsafeRawBufferPointer(page))
        let expected: [UInt8] = (0..<writers.count).flatMap { _ in pageBytes } + [1, 2, 3]
        let written = try contents(of: file)
        #expect(written.count == expected.count)
        #expect(firstDifference(written, expected) == nil)
    }

    /// Turning direct I/O on twice, or off when it is off, changes nothing and does not fail.
    @Test(.enabled(if: supported, "needs a /tmp file system that supports O_DIRECT"))
    func settingIsIdempotent() throws {
        let file = try temporaryFile()
        defer { try? file.close() }
        try file.setDirectIO(false)
        try file.setDirectIO(true)
        try file.setDirectIO(true)
        #expect(throws: Errno.invalidArgument) { try file.writeAll(toAbsoluteOffset: 0, [1]) }
        try file.setDirectIO(false)
        try file.writeAll(toAbsoluteOffset: 0, [1])
    }
}
