import CPageState
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Writes through one io_uring: writev requests at most `queueDepth` at a time, then an fsync request
/// ordered after them. Calls from several threads take turns on the ring.
public final class UringFileWriter: FileWriter {
    /// The `ps_uring`, used only while holding `turn` (its calls are not thread-safe).
    nonisolated(unsafe) private let ring: OpaquePointer
    private let turn = Mutex(())

    /// Sets up a ring with room for `queueDepth` requests in flight.
    ///
    /// The corresponding C function is `io_uring_queue_init` (through `ps_uring_create`).
    public init(queueDepth: UInt32 = 64) throws(Errno) {
        guard let ring = ps_uring_create(queueDepth) else { throw Errno(rawValue: errno) }
        self.ring = ring
    }

    deinit {
        ps_uring_destroy(ring)
    }

    public var kind: FileWriterKind { .ioUring }

    public func write(_ segments: [WriteSegment], to file: FileDescriptor, sync: Bool) throws(Errno) {
        let result = try withWritePlan(segments) { runs in
            turn.withLock { _ in ps_uring_write(ring, file.rawValue, runs.baseAddress, runs.count, sync ? 1 : 0) }
        }
        if result < 0 { throw Errno(rawValue: -result) }
    }
}
