import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Creates the directory `path`.
///
/// The corresponding C function is `mkdir`.
public func makeDirectory(_ path: FilePath, permissions: FilePermissions = [.ownerReadWriteExecute, .groupReadExecute, .otherReadExecute]) throws(Errno) {
    try nothingOrErrno { path.withPlatformString { mkdir($0, permissions.rawValue) } }
}

/// Gives the file at `existing` a second name `new` (a hard link; both names share one inode).
///
/// The corresponding C function is `link`.
public func hardLink(_ existing: FilePath, to new: FilePath) throws(Errno) {
    try nothingOrErrno { existing.withPlatformString { old in new.withPlatformString { link(old, $0) } } }
}

/// Atomically renames `source` to `destination` (a non-empty destination directory is an error).
///
/// The corresponding C function is `rename`.
public func renameEntry(_ source: FilePath, to destination: FilePath) throws(Errno) {
    try nothingOrErrno { source.withPlatformString { old in destination.withPlatformString { rename(old, $0) } } }
}

/// Removes the name `path` of a file (not a directory).
///
/// The corresponding C function is `unlink`.
public func removeFileEntry(_ path: FilePath) throws(Errno) {
    try nothingOrErrno { path.withPlatformString { unlink($0) } }
}

extension FileDescriptor {
    /// Takes an exclusive (write) record lock on the whole file without waiting.
    ///
    /// The lock belongs to the calling process: it is not inherited by children (so a child
    /// forked for `posix_spawn` between `fork` and `exec` cannot keep it alive, as it can a
    /// `flock`), it does not exclude other descriptors of the same process, and it is dropped when
    /// the process closes *any* descriptor of the file or exits.
    ///
    /// The corresponding C function is `fcntl(fd, F_SETLK, &lock)` with `F_WRLCK` from offset 0 to
    /// the end; `EAGAIN` or `EACCES` mean another process holds a lock on it.
    public func lockRecordExclusively() throws(Errno) {
        var lock = Glibc.flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        try nothingOrErrno { ps_fcntl_ptr(rawValue, F_SETLK, &lock) }
    }
}
