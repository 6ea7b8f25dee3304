import Foundation
import Glibc
import PageStateKernel
import SystemPackage
import Testing

@Suite("A private copy of an executable")
struct ExecutableCopyTests {
    /// A new empty directory, removed after `body`.
    func withDirectory(_ body: (FilePath) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("executable-copy-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(FilePath(path))
    }

    /// How the copy behind `copy` of `original` ends when run through `/proc/self/fd/3`.
    func run(_ copy: FileDescriptor, of original: String) throws -> ProcessTermination? {
        let null = try FileDescriptor.open("/dev/null", .readWrite, options: .closeOnExec)
        defer { try? null.close() }
        let pid = try spawnProcess("/proc/self/fd/3", arguments: [original], environment: [], descriptors: [null, null, null, copy])
        return try waitForChild(pid, block: true)
    }

    @Test("byte-identical, read-only, without a name in its directory, and it runs as the original does")
    func copyRuns() throws {
        try withDirectory { directory in
            for (original, status) in [("/usr/bin/true", Int32(0)), ("/usr/bin/false", 1)] {
                let copy = try FileDescriptor.executableCopy(of: FilePath(original), in: directory)
                defer { try? copy.close() }
                let copied = try Data(contentsOf: URL(fileURLWithPath: "/proc/self/fd/\(copy.rawValue)"))
                #expect(copied == (try Data(contentsOf: URL(fileURLWithPath: original))), "\(original): same bytes")
                #expect(throws: Errno.badFileDescriptor) { _ = try copy.writeAll([UInt8(1)]) }
                var info = stat()
                #expect(fstat(copy.rawValue, &info) == 0 && info.st_mode & 0o7777 == 0o500, "read and run by its owner only, written by nobody")
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory.string).isEmpty, "no name left in the directory")
                // Another test's child forked while the copy was written may hold it open for writing a moment.
                #expect(try FileDescriptor.retryingWhileTextBusy { try run(copy, of: original) } == .exited(status),
                        "\(original)'s copy exits as it does")
            }
        }
    }

    @Test("a start refused because the file is open for writing is retried until the writer lets go, for the timeout at most")
    func textBusyStartsAreRetried() throws {
        try withDirectory { directory in
            // An executable (a script run by /usr/bin/true) still open for writing, as while another
            // process holds the descriptor it was written through.
            let writer = try FileDescriptor.unnamedFile(in: directory, permissions: [.ownerReadWrite, .ownerExecute])
            _ = try writer.writeAll(Array("#!/usr/bin/true\n".utf8))
            let copy = try FileDescriptor.open(FilePath("/proc/self/fd/\(writer.rawValue)"), .readOnly, options: .closeOnExec)
            defer { try? copy.close() }
            var attempts = 0
            #expect(throws: Errno.textFileBusy) {
                try FileDescriptor.retryingWhileTextBusy(for: .milliseconds(30)) {
                    attempts += 1
                    return try run(copy, of: "/usr/bin/true")
                }
            }
            #expect(attempts > 1, "retried before giving up")
            let closer = Thread { usleep(20_000); try? writer.close() }
            closer.start()
            #expect(try FileDescriptor.retryingWhileTextBusy { try run(copy, of: "/usr/bin/true") } == .exited(0), "run once the writer closed")
        }
    }

    @Test("a missing directory or source is a typed error")
    func missingDirectoryOrSource() throws {
        #expect(throws: Errno.noSuchFileOrDirectory) {
            _ = try FileDescriptor.executableCopy(of: "/usr/bin/true", in: "/nonexistent-pagestate-directory")
        }
        try withDirectory { directory in
            #expect(throws: Errno.noSuchFileOrDirectory) {
                _ = try FileDescriptor.executableCopy(of: FilePath(directory.string + "/missing"), in: directory)
            }
        }
    }
}
