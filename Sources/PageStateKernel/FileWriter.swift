// Batched file writes with two byte-identical backends:
//
//     public struct WriteSegment              // `bytes` land at byte `offset` of the file
//     public enum FileWriterKind              // .ioUring ("io_uring"), .pwrite
//     public protocol FileWriter: Sendable {
//         var kind: FileWriterKind { get }
//         func write(_ segments: [WriteSegment], to file: FileDescriptor, sync: Bool) throws(Errno)
//         func sync(_ file: FileDescriptor) throws(Errno)       // default: write([], to: file, sync: true)
//     }
//     public final class UringFileWriter: FileWriter         // one io_uring, behind a Mutex
//     public struct PwriteFileWriter: FileWriter             // pwritev + fsync
//     public enum FileWriters {
//         static func best() -> any FileWriter                // io_uring unless unavailable or PAGESTATE_WRITER=pwrite
//         static func make(_ kind: FileWriterKind) throws(Errno) -> any FileWriter
//     }
//
// Both backends write the same plan (`ps_write_plan`): segments, in order, coalesced into runs of at
// most IOV_MAX buffers at consecutive file offsets, buffers contiguous in memory merged.
import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One piece of a batched write: `bytes` land at byte `offset` of the file.
///
/// The bytes are borrowed: they must stay valid, and unchanged, until the write returns.
public struct WriteSegment: @unchecked Sendable {
    /// Laid out exactly as the C struct, so a `[WriteSegment]` is passed to C without copying.
    var raw: ps_write_segment

    public init(offset: UInt64, bytes: UnsafeRawBufferPointer) {
        raw = ps_write_segment(base: bytes.baseAddress, length: bytes.count, offset: offset)
    }

    /// The file offset of the first byte.
    public var offset: UInt64 {
        get { raw.offset }
        set { raw.offset = newValue }
    }

    /// The bytes to write.
    public var bytes: UnsafeRawBufferPointer {
        get { UnsafeRawBufferPointer(start: raw.base, count: raw.length) }
        set { raw = ps_write_segment(base: newValue.baseAddress, length: newValue.count, offset: raw.offset) }
    }
}

/// A `FileWriter` backend; raw values are what `PAGESTATE_WRITER` accepts.
public enum FileWriterKind: String, Sendable, CaseIterable {
    case ioUring = "io_uring"
    case pwrite
}

/// Writes many scattered buffers to a file in one call, and makes files durable.
///
/// Segments must not overlap in the file (overlapping bytes are unspecified: io_uring may write
/// them in any order). Segments at consecutive offsets, in list order, are written by one vectored
/// write, so list pages in file order.
public protocol FileWriter: Sendable {
    var kind: FileWriterKind { get }

    /// Writes every segment completely (short writes are continued), then, when `sync` is true,
    /// fsyncs `file`. Zero-length segments write nothing and do not extend the file.
    ///
    /// Throws the first error; the file then holds an unspecified subset of the segments.
    /// `Errno.invalidArgument` when a segment would end beyond `Int64.max`.
    ///
    /// - Complexity: O(n) in the number of segments, plus one system call per IOV_MAX (1,024) buffers
    ///   with pwrite, or per ring's depth of such writes with io_uring.
    func write(_ segments: [WriteSegment], to file: FileDescriptor, sync: Bool) throws(Errno)

    /// Makes a file's data and metadata, or a directory's entries, durable (`fsync`).
    func sync(_ file: FileDescriptor) throws(Errno)
}

extension FileWriter {
    public func sync(_ file: FileDescriptor) throws(Errno) {
        try write([], to: file, sync: true)
    }
}

/// Lays `segments` out as `ps_write_run`s (see `ps_write_plan`) and passes them to `body`, which may
/// advance them in place.
func withWritePlan<R>(
    _ segments: [WriteSegment], _ body: (UnsafeMutableBufferPointer<ps_write_run>) throws(Errno) -> R
) throws(Errno) -> R {
    try segments.withUnsafeBufferPointer { (segments) throws(Errno) -> R in
        try segments.withMemoryRebound(to: ps_write_segment.self) { (segments) throws(Errno) -> R in
            try withUnsafeTemporaryAllocation(of: iovec.self, capacity: segments.count) { (iov) throws(Errno) -> R in
                try withUnsafeTemporaryAllocation(of: ps_write_run.self, capacity: segments.count) { (runs) throws(Errno) -> R in
                    let count = try valueOrErrno {
                        ps_write_plan(segments.baseAddress, segments.count, iov.baseAddress, runs.baseAddress)
                    }
                    return try body(UnsafeMutableBufferPointer(rebasing: runs[..<count]))
                }
            }
        }
    }
}

/// Chooses and constructs file writers.
public enum FileWriters {
    /// The environment variable that, set to `pwrite`, makes `best()` skip io_uring.
    public static let environmentVariable = "PAGESTATE_WRITER"

    /// The best writer for this machine: a `UringFileWriter` when a ring can be set up and
    /// `PAGESTATE_WRITER` is not `pwrite`, else a `PwriteFileWriter`. Each call sets up a new ring:
    /// keep the writer.
    public static func best() -> any FileWriter {
        best(requested: getenv(environmentVariable).map { String(cString: $0) })
    }

    /// `best()` with the value of `PAGESTATE_WRITER` given.
    static func best(requested: String?) -> any FileWriter {
        if FileWriterKind(rawValue: requested ?? "") != .pwrite, let writer = try? UringFileWriter() {
            return writer
        }
        return PwriteFileWriter()
    }

    /// A writer of the given kind; throws the error of setting up a ring when io_uring is unavailable.
    public static func make(_ kind: FileWriterKind) throws(Errno) -> any FileWriter {
        switch kind {
        case .ioUring: try UringFileWriter()
        case .pwrite: PwriteFileWriter()
        }
    }
}
