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
    /// Takes an exclusive advisory lock on the open file without waiting; held until the descriptor
    /// closes (or the process dies).
    ///
    /// The corresponding C function is `flock(fd, LOCK_EX | LOCK_NB)`; `EWOULDBLOCK` means another holder.
    public func lockExclusively() throws(Errno) {
        try nothingOrErrno { flock(rawValue, LOCK_EX | LOCK_NB) }
    }
}
