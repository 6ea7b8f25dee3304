import CPageState
import SystemPackage

/// Seals that can be placed on a memfd (`F_ADD_SEALS`).
public struct FileSeals: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// No further seals may be added.
    public static let seal = FileSeals(rawValue: Int32(PS_F_SEAL_SEAL))
    /// The file may not shrink: holders of a mapping cannot be killed by SIGBUS through truncation.
    public static let shrink = FileSeals(rawValue: Int32(PS_F_SEAL_SHRINK))
    /// The file may not grow.
    public static let grow = FileSeals(rawValue: Int32(PS_F_SEAL_GROW))
    /// The contents may not be written.
    public static let write = FileSeals(rawValue: Int32(PS_F_SEAL_WRITE))
}

extension FileDescriptor {
    /// Creates an anonymous memory-backed file that allows sealing and is closed on exec.
    ///
    /// The corresponding C function is `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
    public static func memfd(name: String) throws(Errno) -> FileDescriptor {
        let flags = UInt32(PS_MFD_CLOEXEC | PS_MFD_ALLOW_SEALING)
        let fd = try valueOrErrno { ps_memfd_create(name, flags) }
        return FileDescriptor(rawValue: fd)
    }

    /// Adds seals to a memfd.
    ///
    /// Sealing against writes first waits for every extra reference to the file's pages to drop
    /// (in-flight I/O, a pipe holding a page, memory reclaim or compaction looking at it) and fails
    /// with `EBUSY` when one outlasts the kernel's wait of ~150 ms. Reclaim can hold pages that long
    /// (DAMON's `pageout` scheme did on this project's machines), so `EBUSY` is retried until
    /// `attempts` calls have failed, each waiting again; a reference held for good (a page left in a
    /// pipe) still fails, after about `attempts` × 150 ms. `EINTR` is retried.
    ///
    /// The corresponding C function is `fcntl(fd, F_ADD_SEALS, seals)`.
    public func addSeals(_ seals: FileSeals, attempts: Int = 8) throws(Errno) {
        var failed = 0
        while true {
            do throws(Errno) {
                return try nothingOrErrno { ps_fcntl_int(rawValue, Int32(PS_F_ADD_SEALS), seals.rawValue) }
            } catch .resourceBusy {
                failed += 1
                if failed >= attempts { throw .resourceBusy }
            }
        }
    }

    /// The seals on a memfd; `EINVAL` for files that do not support sealing.
    ///
    /// The corresponding C function is `fcntl(fd, F_GET_SEALS)`.
    public func seals() throws(Errno) -> FileSeals {
        FileSeals(rawValue: try valueOrErrno { ps_fcntl_int(rawValue, Int32(PS_F_GET_SEALS), 0) })
    }
}
