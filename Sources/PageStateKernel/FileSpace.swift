import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What `fstat` says about a file's size and the storage it occupies.
public struct FileSpace: Sendable, Equatable {
    /// Length in bytes (`st_size`).
    public var length: UInt64
    /// Bytes of storage actually allocated (`st_blocks` × 512): drops when holes are punched.
    public var allocatedBytes: UInt64
}

extension FileDescriptor {
    /// The file's length and allocated storage.
    ///
    /// The corresponding C function is `fstat`.
    public func space() throws(Errno) -> FileSpace {
        var status = stat()
        try nothingOrErrno { fstat(rawValue, &status) }
        return FileSpace(length: UInt64(status.st_size), allocatedBytes: UInt64(status.st_blocks) * 512)
    }

    /// Sets the file's length (growing fills with zeros).
    ///
    /// The corresponding C function is `ftruncate`.
    public func setLength(_ length: UInt64) throws(Errno) {
        try nothingOrErrno { ftruncate(rawValue, off_t(length)) }
    }

    /// Deallocates the storage of a byte range, keeping the file's length; the range then reads as zeros.
    ///
    /// The corresponding C function is `fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)`.
    public func punchHole(offset: UInt64, length: UInt64) throws(Errno) {
        let mode = Int32(PS_FALLOC_FL_PUNCH_HOLE | PS_FALLOC_FL_KEEP_SIZE)
        try nothingOrErrno { ps_fallocate(rawValue, mode, off_t(offset), off_t(length)) }
    }

    /// Opens an unnamed regular file in `directory` (`O_TMPFILE`): it vanishes when the last descriptor closes.
    ///
    /// The corresponding C function is `open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)`.
    public static func unnamedFile(in directory: FilePath) throws(Errno) -> FileDescriptor {
        let flags = Int32(PS_O_TMPFILE) | O_RDWR | O_CLOEXEC
        let fd = try valueOrErrno { directory.withPlatformString { open($0, flags, 0o600) } }
        return FileDescriptor(rawValue: fd)
    }
}
