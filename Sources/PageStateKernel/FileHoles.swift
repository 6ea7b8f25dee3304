import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension FileDescriptor {
    /// Deallocates the storage of a byte range, keeping the file's length; the range then reads as zeros.
    ///
    /// The corresponding C function is `fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)`.
    public func punchHole(offset: UInt64, length: UInt64) throws(Errno) {
        let mode = Int32(PS_FALLOC_FL_PUNCH_HOLE | PS_FALLOC_FL_KEEP_SIZE)
        try nothingOrErrno { ps_fallocate(rawValue, mode, off_t(offset), off_t(length)) }
    }

    /// Allocates the storage of a byte range now (for a memfd: zero-filled pages), growing the file
    /// if the range ends past it, so that later writes into the range allocate nothing.
    ///
    /// The corresponding C function is `fallocate(fd, 0, offset, length)`.
    public func allocateSpace(offset: UInt64, length: UInt64) throws(Errno) {
        try nothingOrErrno { ps_fallocate(rawValue, 0, off_t(offset), off_t(length)) }
    }

    /// Opens an unnamed regular file in `directory` (`O_TMPFILE`): it vanishes when the last descriptor closes.
    ///
    /// The corresponding C function is `open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, permissions)`.
    public static func unnamedFile(in directory: FilePath, permissions: FilePermissions = [.ownerReadWrite]) throws(Errno) -> FileDescriptor {
        let flags = Int32(PS_O_TMPFILE) | O_RDWR | O_CLOEXEC
        let fd = try valueOrErrno { directory.withPlatformString { Glibc.open($0, flags, permissions.rawValue) } }
        return FileDescriptor(rawValue: fd)
    }
}
