import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension FileDescriptor {
    /// Turns direct I/O (`O_DIRECT`) on or off for this open file: writes then go from the caller's
    /// buffers to the device without a copy into the page cache. While it is on, every write's
    /// buffers, length and file offset must be aligned to the file system's block size (4 KiB pages
    /// always are), or the write fails with `EINVAL`.
    ///
    /// Throws `Errno.invalidArgument` when the file system does not support direct I/O.
    ///
    /// The corresponding C function is `fcntl(fd, F_SETFL, flags)`, after `fcntl(fd, F_GETFL)`.
    public func setDirectIO(_ enabled: Bool) throws(Errno) {
        let flags = try valueOrErrno { ps_fcntl_int(rawValue, F_GETFL, 0) }
        let wanted = enabled ? flags | Int32(PS_O_DIRECT) : flags & ~Int32(PS_O_DIRECT)
        if wanted != flags { try nothingOrErrno { ps_fcntl_int(rawValue, F_SETFL, wanted) } }
    }
}
