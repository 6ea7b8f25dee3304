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
    /// Sealing against writes waits for extra references to the file's pages (in-flight I/O, a page
    /// in a pipe, reclaim looking at it) to drop and fails with `EBUSY` after ~150 ms; that `EBUSY` is
    /// retried until `attempts` calls have failed (about `attempts` × 165 ms at worst). A writable
    /// shared mapping of the file fails every call at once.
    ///
    /// The corresponding C function is `fcntl(fd, F_ADD_SEALS, seals)`.
    public func addSeals(_ seals: FileSeals, attempts: Int = 8) throws(Errno) {
        precondition(attempts > 0, "at least one attempt")
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
