import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Writes with `pwritev`, one call per run of at most IOV_MAX buffers, and syncs with `fsync`.
public struct PwriteFileWriter: FileWriter {
    public init() {}

    public var kind: FileWriterKind { .pwrite }

    public func write(_ segments: [WriteSegment], to file: FileDescriptor, sync: Bool) throws(Errno) {
        try withWritePlan(segments) { (runs) throws(Errno) in
            for index in runs.indices {
                var more: Int32
                repeat {
                    let run = runs[index]
                    let buffers = UnsafeBufferPointer(start: run.iov, count: Int(run.iovcnt))
                    let written = try file.write(toAbsoluteOffset: Int64(run.offset), gathering: buffers)  // ≤ Int64.max: planned
                    more = ps_write_run_advance(&runs[index], written)
                    if more < 0 { throw Errno(rawValue: -more) }
                } while more > 0
            }
        }
        if sync { try file.sync() }
    }
}

extension FileDescriptor {
    /// Writes `buffers` back to back from byte `offset`, without moving the file position; returns the
    /// bytes written, which may be fewer than asked.
    ///
    /// The corresponding C function is `pwritev`.
    public func write(toAbsoluteOffset offset: Int64, gathering buffers: UnsafeBufferPointer<iovec>) throws(Errno) -> Int {
        try valueOrErrno { pwritev(rawValue, buffers.baseAddress, Int32(buffers.count), off_t(offset)) }
    }

    /// Makes the file's data and metadata, or the directory's entries, durable.
    ///
    /// The corresponding C function is `fsync`.
    public func sync() throws(Errno) {
        try nothingOrErrno { fsync(rawValue) }
    }
}
