import PageStateKernel
import Synchronization
import SystemPackage

/// One state manager's exclusive hold on a state directory, against managers in other processes and
/// in this one; released when the value is deinitialized (or the process dies).
///
/// Other processes are kept out by a record lock on `DIR/LOCK` (`lockRecordExclusively`), not by
/// `flock`: a flock lives on the open file, which a child forked by another thread (`posix_spawn`
/// forks before it execs) shares for a moment, so reopening a directory right after closing it
/// failed now and then while the process was spawning children. Record locks belong to the process
/// instead, so managers within it are kept apart by `held`, the process's set of lock files (device,
/// inode) it holds.
///
/// Invariants: a lock file in `held` is open exactly once in this process (by its holder) — another
/// descriptor's close would drop the process's record lock — so `init` checks `held` before
/// opening, under `held`'s mutex; `descriptor` stays open until `deinit`. Like any lock file, it
/// protects only while nobody removes or replaces `DIR/LOCK` behind the holder's back.
final class DirectoryLock: Sendable {
    private struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64

        init(_ status: Stat) {
            (device, inode) = (UInt64(status.deviceID.rawValue), UInt64(status.inode.rawValue))
        }
    }

    private static let held = Mutex<Set<FileIdentity>>([])

    private let descriptor: FileDescriptor
    private let identity: FileIdentity

    /// Takes the lock file at `path` (creating it), for the directory `directory`.
    ///
    /// - Throws: `.directoryLocked` when a manager in this or another process holds it; `.system`.
    init(_ path: FilePath, directory: FilePath) throws(StoreError) {
        (descriptor, identity) = try Self.held.withLock { (held) throws(StoreError) in
            if let existing = try? Stat(path), held.contains(FileIdentity(existing)) {
                throw .directoryLocked(path: directory.string)
            }
            let descriptor = try system("open", path) {
                try FileDescriptor.open(path, .readWrite, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
            }
            do throws(Errno) {
                let identity = FileIdentity(try descriptor.stat())
                try descriptor.lockRecordExclusively()
                held.insert(identity)
                return (descriptor, identity)
            } catch {
                try? descriptor.close()
                if error == .resourceTemporarilyUnavailable || error == .permissionDenied {
                    throw .directoryLocked(path: directory.string)
                }
                throw .system(operation: "lock", path: path.string, error)
            }
        }
    }

    deinit {
        Self.held.withLock { held in
            try? descriptor.close()
            held.remove(identity)
        }
    }
}
