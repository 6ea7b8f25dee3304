import Foundation
import PageStateKernel
import SystemPackage
import Testing

@Suite struct ProcFileTests {
    @Test("a /proc file is read whole, past its short reads: every line of a /proc/self/maps far over 4 KiB")
    func longProcFileIsReadWhole() throws {
        let file = try FileDescriptor.memfd(name: "proc-file-test")
        defer { try? file.close() }
        try file.resize(to: 4096)
        // 300 mappings of one page, each a line of its own (a mapping never merges with another of
        // the same file at the same offset): ~30 KiB of lines, on top of the process's others.
        var mappings: [UnsafeMutableRawPointer] = []
        defer { for mapping in mappings { try? unmapMemory(mapping, length: 4096) } }
        for _ in 0..<300 { mappings.append(try mapMemory(length: 4096, protection: .read, flags: .shared, descriptor: file)) }
        let maps = try readProcFile("/proc/self/maps")
        #expect(maps.utf8.count > 30_000)
        let listed = Set(maps.split(separator: "\n").filter { $0.hasSuffix("/memfd:proc-file-test (deleted)") }
            .compactMap { UInt($0.prefix { $0 != "-" }, radix: 16) })
        let unlisted = mappings.filter { !listed.contains(UInt(bitPattern: $0)) }
        #expect(unlisted.isEmpty, "each mapping has its line; \(unlisted.count) of \(mappings.count) have none")
        #expect(maps.hasSuffix("\n"), "the last line is whole")
    }

    @Test func missingFileIsATypedError() {
        #expect(throws: Errno.noSuchFileOrDirectory) { try readProcFile("/proc/self/no-such-file") }
    }
}
