import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension FileDescriptor {
    /// A private copy of the executable at `path`: an unnamed file (`O_TMPFILE`) in `directory`, open
    /// read-only, that `execve` runs through `/proc/self/fd/N` and that vanishes once its last
    /// descriptor is closed and no process maps it (also when the host dies). Processes started from
    /// it map the copy's own page-cache pages: the kernel's reverse-map walks over them (reclaim,
    /// DAMON), which a `fork` of one of them waits for, visit only those processes, however many run
    /// the original (design/sandbox.md, "Launchers").
    ///
    /// `directory` must allow executables (no `noexec` mount) and support `O_TMPFILE`. The copy's
    /// pages are page cache, not shared memory, unless `directory` is on tmpfs. Throws `Errno`.
    public static func executableCopy(of path: FilePath, in directory: FilePath) throws -> FileDescriptor {
        let source = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? source.close() }
        let copy = try unnamedFile(in: directory, permissions: [.ownerRead, .ownerExecute])  // written through this descriptor only
        defer { try? copy.close() }  // a file open for writing cannot be executed (ETXTBSY)
        let length = try source.seek(offset: 0, from: .end)
        var copied: Int64 = 0
        while copied < length {
            let sent = try copy.sendFile(from: source, offset: copied, count: Int(min(length - copied, 1 << 30)))
            guard sent > 0 else { throw Errno.ioError }  // the source shrank while being copied
            copied += Int64(sent)
        }
        return try FileDescriptor.open(FilePath("/proc/self/fd/\(copy.rawValue)"), .readOnly, options: .closeOnExec)
    }

    /// Calls `start` (something that runs a copy made by `executableCopy`: a spawn through
    /// `/proc/self/fd/N`) again, 1 ms apart, while it fails with `ETXTBSY`, for `timeout` at most.
    /// A process that another thread forked while the copy was being written holds the copy's writable
    /// descriptor until it calls `execve` or exits (a `posix_spawn` child for a moment; longer on a
    /// loaded machine), and the kernel refuses to run a file open for writing meanwhile.
    public static func retryingWhileTextBusy<T>(for timeout: Duration = .seconds(1), _ start: () throws -> T) throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            do { return try start() } catch let error as Errno where error == .textFileBusy && ContinuousClock.now < deadline {
                sleepCallingThread(for: .milliseconds(1))
            }
        }
    }

    /// Copies up to `count` bytes of `source`, from `offset` (the source's own position unchanged),
    /// to this descriptor's position, inside the kernel; returns how many were copied (0 at the
    /// source's end).
    ///
    /// The corresponding C function is `sendfile(fd, source, &offset, count)`.
    public func sendFile(from source: FileDescriptor, offset: Int64, count: Int) throws(Errno) -> Int {
        var position = off_t(offset)
        return try valueOrErrno { Glibc.sendfile(rawValue, source.rawValue, &position, count) }
    }
}
