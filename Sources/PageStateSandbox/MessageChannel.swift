import CPageState
import PageStateKernel
import SystemPackage

/// The kinds of message on a host ⇄ worker socket.
enum MessageType: UInt16 {
    case execute = 1
    case hostCallReply = 2
    case ready = 10
    case result = 11
    case hostCall = 12
    /// The real message is in a sealed memfd that travels as the first descriptor.
    case bulk = 20
}

/// What arrived on a channel.
enum Received {
    case message(MessageType, [UInt8], [FileDescriptor])
    /// The worker's seccomp reporter wrote this just before the worker exited.
    case violation(ps_violation_report)
    /// The peer closed its end (it exited or crashed).
    case closed
}

/// One end of a host ⇄ worker `SOCK_SEQPACKET` socket: framed messages
/// (`"PSWK"` · type u16 · 0 u16 · body) with descriptors; bodies too large for one datagram travel in
/// a sealed memfd. Every received byte is validated; nothing received can make it crash.
struct MessageChannel {
    static let magic: UInt32 = 0x4B57_5350  // "PSWK"
    /// Largest datagram sent inline; larger bodies go through a memfd.
    static let inlineLimit = 96 * 1024
    static let headerSize = 8

    let socket: FileDescriptor

    func send(_ type: MessageType, _ body: [UInt8], descriptors: [FileDescriptor] = []) throws(Errno) {
        guard body.count + Self.headerSize > Self.inlineLimit else {
            try socket.send(Self.header(type) + body, descriptors: descriptors)
            return
        }
        let file = try FileDescriptor.memfd(name: "pagestate-message")
        defer { try? file.close() }
        let written = body.withUnsafeBytes { buffer in
            Result { () throws(Errno) in
                try PwriteFileWriter().write([WriteSegment(offset: 0, bytes: buffer)], to: file, sync: false)
            }
        }
        try written.get()
        try file.addSeals([.write, .shrink, .grow])
        var header = WireWriter()
        header.append(type.rawValue)
        header.append(UInt16(0))
        header.append(UInt64(body.count))
        try socket.send(Self.header(.bulk) + header.bytes, descriptors: [file] + descriptors)
    }

    private static func header(_ type: MessageType) -> [UInt8] {
        var writer = WireWriter()
        writer.append(magic)
        writer.append(type.rawValue)
        writer.append(UInt16(0))
        return writer.bytes
    }

    /// Receives one message of at most `limit` body bytes with at most `maximumDescriptors` descriptors
    /// (plus a bulk memfd). Received descriptors belong to the caller, also when this throws.
    func receive(limit: Int, maximumDescriptors: Int) throws(ProtocolError) -> Received {
        let message: ReceivedMessage
        do {
            message = try socket.receive(maximumLength: Self.inlineLimit + Self.headerSize, maximumDescriptors: maximumDescriptors + 1)
        } catch .connectionReset {
            return .closed
        } catch {
            throw .unexpected("receiving failed: \(error)")
        }
        var descriptors = message.descriptors
        var keep = false
        defer { if !keep { for descriptor in descriptors { try? descriptor.close() } } }
        if message.bytes.isEmpty && descriptors.isEmpty { return .closed }
        guard !message.truncated else { throw .oversized(bytes: UInt64(message.bytes.count), limit: UInt64(Self.inlineLimit)) }
        var reader = WireReader(message.bytes)
        let magic: UInt32 = try reader.read()
        if magic == UInt32(PS_VIOLATION_MAGIC) && message.bytes.count == MemoryLayout<ps_violation_report>.size {
            var report = ps_violation_report()
            withUnsafeMutableBytes(of: &report) { $0.copyBytes(from: message.bytes) }
            return .violation(report)
        }
        guard magic == Self.magic else { throw .malformed(offset: 0, "bad magic") }
        guard let type = MessageType(rawValue: try reader.read()) else { throw .malformed(offset: 4, "unknown message type") }
        guard try reader.read(UInt16.self) == 0 else { throw .malformed(offset: 6, "nonzero reserved field") }
        guard type == .bulk else {
            guard descriptors.count <= maximumDescriptors else { throw .malformed(offset: 0, "too many descriptors") }
            keep = true
            return .message(type, Array(message.bytes[Self.headerSize...]), descriptors)
        }
        guard let inner = MessageType(rawValue: try reader.read()), inner != .bulk else { throw .malformed(offset: 8, "bad bulk type") }
        _ = try reader.read(UInt16.self)
        let length = try reader.read(UInt64.self)
        try reader.finish()
        guard length <= UInt64(limit) else { throw .oversized(bytes: length, limit: UInt64(limit)) }
        guard let file = descriptors.first else { throw .malformed(offset: 8, "bulk message without its memfd") }
        let body = try Self.readBody(file, length: Int(length))
        try? file.close()
        descriptors.removeFirst()
        guard descriptors.count <= maximumDescriptors else { throw .malformed(offset: 0, "too many descriptors") }
        keep = true
        return .message(inner, body, descriptors)
    }

    private static func readBody(_ file: FileDescriptor, length: Int) throws(ProtocolError) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: length)
        var done = 0
        while done < length {
            let count: Int
            do {
                count = try body.withUnsafeMutableBytes { buffer in
                    try file.read(fromAbsoluteOffset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
                }
            } catch {
                throw .malformed(offset: done, "reading the bulk memfd failed: \(error)")
            }
            guard count > 0 else { throw .malformed(offset: done, "bulk memfd shorter than its declared \(length) bytes") }
            done += count
        }
        return body
    }
}
