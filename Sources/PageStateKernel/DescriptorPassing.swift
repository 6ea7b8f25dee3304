import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A datagram received with the descriptors that travelled with it (SCM_RIGHTS).
public struct ReceivedMessage: Sendable {
    /// The payload bytes actually received.
    public var bytes: [UInt8]
    /// Received descriptors, already close-on-exec; the receiver owns and must close them.
    public var descriptors: [FileDescriptor]
    /// The payload or the descriptors did not fit: the message is incomplete and must be rejected.
    public var truncated: Bool
}

extension FileDescriptor {
    /// Creates a connected pair of close-on-exec unix sockets.
    ///
    /// The corresponding C function is `socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds)`.
    public static func socketPair(datagrams: Bool = true) throws(Errno) -> (FileDescriptor, FileDescriptor) {
        var fds: (Int32, Int32) = (-1, -1)
        let kind = Int32(datagrams ? SOCK_SEQPACKET.rawValue : SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        try withUnsafeMutableBytes(of: &fds) { raw throws(Errno) in
            let pointer = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
            try nothingOrErrno { socketpair(AF_UNIX, kind, 0, pointer) }
        }
        return (FileDescriptor(rawValue: fds.0), FileDescriptor(rawValue: fds.1))
    }

    /// Makes a send that waits for room in this socket's buffer give up with `EAGAIN` after `timeout`
    /// (rounded up to microseconds, at most a day; zero waits forever, the default). A send blocked
    /// then also ends with `EINTR` at any signal.
    ///
    /// The corresponding C function is `setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, ...)`.
    public func setSendTimeout(_ timeout: Duration) throws(Errno) {
        let microseconds = Int(min(max(0, (timeout / .microseconds(1)).rounded(.up)), 86_400e6))
        var value = timeval(tv_sec: microseconds / 1_000_000, tv_usec: microseconds % 1_000_000)
        try nothingOrErrno { setsockopt(rawValue, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) }
    }

    /// How long a send on this socket waits for room before it gives up (zero: forever).
    ///
    /// The corresponding C function is `getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, ...)`.
    public func sendTimeout() throws(Errno) -> Duration {
        var value = timeval()
        var size = socklen_t(MemoryLayout<timeval>.size)
        try nothingOrErrno { getsockopt(rawValue, SOL_SOCKET, SO_SNDTIMEO, &value, &size) }
        return .seconds(value.tv_sec) + .microseconds(value.tv_usec)
    }

    /// Sends `bytes` and `descriptors` (at most 253) as one message on a unix socket. When
    /// `nonBlocking`, a full socket buffer throws `EAGAIN` instead of waiting.
    ///
    /// The corresponding C function is `sendmsg` with an `SCM_RIGHTS` control message.
    public func send(_ bytes: [UInt8], descriptors: [FileDescriptor] = [], nonBlocking: Bool = false) throws(Errno) {
        let raw = descriptors.map(\.rawValue)
        let flags = nonBlocking ? Int32(MSG_DONTWAIT) : 0
        let sent = try valueOrErrno {
            bytes.withUnsafeBytes { buffer in
                ps_send_with_fds(rawValue, buffer.baseAddress, buffer.count, raw, Int32(raw.count), flags)
            }
        }
        if sent != bytes.count { throw Errno.messageTooLong }
    }

    /// Receives one message of at most `maximumLength` bytes with up to `maximumDescriptors` descriptors.
    /// An empty message without descriptors means the peer closed the connection.
    ///
    /// The corresponding C function is `recvmsg(fd, msg, MSG_CMSG_CLOEXEC)`.
    public func receive(maximumLength: Int, maximumDescriptors: Int = 8) throws(Errno) -> ReceivedMessage {
        var fds = [Int32](repeating: -1, count: max(maximumDescriptors, 1))
        var count: Int32 = 0
        var truncated: Int32 = 0
        var failure: Errno?
        // Uninitialized: the buffer is as large as the largest message (96 KiB for a worker's), and
        // zeroing it cost more than the message most of the time.
        let bytes = [UInt8](unsafeUninitializedCapacity: maximumLength) { buffer, initialized in
            do throws(Errno) {
                initialized = try valueOrErrno {
                    ps_recv_with_fds(rawValue, buffer.baseAddress, buffer.count, &fds, Int32(maximumDescriptors), &count, &truncated)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return ReceivedMessage(bytes: bytes, descriptors: fds.prefix(Int(count)).map(FileDescriptor.init(rawValue:)),
                               truncated: truncated != 0)
    }
}
