import CPageState
import Foundation
import Glibc
import PageStateKernel
import SystemPackage
import Testing

/// `F_SEAL_WRITE` waits for extra references to a memfd's pages and fails with `EBUSY` when one
/// outlasts the kernel's wait; `addSeals` retries. A page spliced into a pipe (`vmsplice`) holds
/// such a reference until the pipe is read.
@Suite("Sealing a memfd against writes while a page is referenced", .timeLimit(.minutes(1)))
struct SealRetryTests {
    /// A memfd of one written page, plus a pipe holding a reference to that page.
    func pinnedPage() throws -> (file: FileDescriptor, pipe: (read: FileDescriptor, write: FileDescriptor)) {
        let file = try FileDescriptor.memfd(name: "seal-retry")
        do {
            _ = try file.writeAll(toAbsoluteOffset: 0, [UInt8](repeating: 7, count: 4096))
            let mapping = try mapMemory(length: 4096, protection: .read, flags: .shared, descriptor: file)
            defer { try? unmapMemory(mapping, length: 4096) }
            let pipe = try FileDescriptor.pipe()
            var segment = iovec(iov_base: mapping, iov_len: 4096)
            let spliced = withUnsafeMutablePointer(to: &segment) { pointer in
                ps_raw_syscall(Int(PS_SYS_VMSPLICE), Int(pipe.writeEnd.rawValue), Int(bitPattern: pointer), 1, 0)
            }
            guard spliced == 4096 else {
                try? pipe.readEnd.close()
                try? pipe.writeEnd.close()
                throw Errno(rawValue: errno)
            }
            return (file, (pipe.readEnd, pipe.writeEnd))
        } catch {
            try? file.close()
            throw error
        }
    }

    @Test("a page held for good: EBUSY once the attempts are used up, no seal added; the seals go on once it is let go")
    func heldPageFailsThenSeals() throws {
        let (file, pipe) = try pinnedPage()
        defer { try? file.close(); try? pipe.read.close(); try? pipe.write.close() }
        #expect(throws: Errno.resourceBusy) { try file.addSeals([.write, .shrink], attempts: 2) }
        #expect(try file.seals() == [], "a failed call adds none of the seals")
        var drained = [UInt8](repeating: 0, count: 4096)
        #expect(try drained.withUnsafeMutableBytes { try pipe.read.read(into: $0) } == 4096)
        try file.addSeals([.write, .shrink], attempts: 1)
        #expect(try file.seals() == [.write, .shrink])
    }

    @Test("a page let go after the kernel's first wait: the seal goes on at a later attempt")
    func pageLetGoDuringTheWait() throws {
        let (file, pipe) = try pinnedPage()
        defer { try? file.close(); try? pipe.write.close() }
        // The kernel's first wait ends with EBUSY after ~150 ms; the page is let go after 400 ms.
        let reader = pipe.read
        let drainer = Thread {
            Thread.sleep(forTimeInterval: 0.4)
            var drained = [UInt8](repeating: 0, count: 4096)
            _ = drained.withUnsafeMutableBytes { try? reader.read(into: $0) }
            try? reader.close()
        }
        drainer.start()
        try file.addSeals(.write, attempts: 20)
        #expect(try file.seals().contains(.write))
    }
}
