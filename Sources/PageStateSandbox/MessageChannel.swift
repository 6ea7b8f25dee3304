import CPageState
import PageStateKernel
import SystemPackage

/// The kinds of message on a host ⇄ worker channel.
enum MessageType: UInt16 {
    case execute = 1
    case hostCallReply = 2
    /// The host's shared mailbox memfd, the first message after `ready`.
    case mailbox = 3
    case ready = 10
    case result = 11
    case hostCall = 12
    /// The real message is in a sealed memfd that travels as the first descriptor.
    case bulk = 20
    /// A wake-up for a receiver sleeping on the socket: a message is in the mailbox.
    case wake = 30
}

/// What arrived on a channel.
enum Received {
    case message(MessageType, [UInt8], [FileDescriptor])
    /// The worker's seccomp reporter wrote this just before the worker exited.
    case violation(ps_violation_report)
    /// The peer closed its end (it exited or crashed).
    case closed
}

/// One end of a host ⇄ worker channel: framed messages (`"PSWK"` · type u16 · 0 u16 · body) with
/// descriptors over a `SOCK_SEQPACKET` socket and, once the host has sent one, through a
/// `SharedMailbox` — the fast path for messages without descriptors that fit a slot. Bodies too
/// large for one datagram travel in a sealed memfd. Every received byte is validated; nothing
/// received can make it crash. Used by one thread at a time.
final class MessageChannel {
    static let magic: UInt32 = 0x4B57_5350  // "PSWK"
    /// Largest datagram sent inline; larger bodies go through a memfd.
    static let inlineLimit = 96 * 1024
    static let headerSize = 8

    let socket: FileDescriptor
    private(set) var mailbox: SharedMailbox?
    /// Waits (`receive` calls) that found the peer running on the waiting thread's processor.
    private var waitsBesidePeer = 0
    /// Whether the mailbox announced a message on the socket that has not been read yet (a receive
    /// whose deadline passed before the datagram came leaves it for the next one).
    private var announcedOnSocket = false

    /// Whether a spinning receiver that finds its peer on its processor moves to another one
    /// (workers) rather than only yielding to it (the host's threads belong to the embedder).
    let movesOffPeersProcessor: Bool

    init(socket: FileDescriptor, movesOffPeersProcessor: Bool = false) {
        self.socket = socket
        self.movesOffPeersProcessor = movesOffPeersProcessor
    }

    /// Whether the peer says it took every message sent through the mailbox (false before one is
    /// attached). See `SharedMailbox.peerTookEverything`.
    var peerTookEverything: Bool { mailbox?.peerTookEverything ?? false }

    /// Carries every later message through `mailbox` (messages with descriptors are announced there
    /// and sent on the socket). Both ends attach the same file's mapping after the `.mailbox` message.
    /// Once: a channel's mailbox is never replaced, so pointers into its mapping (a ready worker's
    /// death notice, `ReadyWorkers`) stay valid while the channel lives.
    func attach(_ mailbox: SharedMailbox) {
        precondition(self.mailbox == nil, "a channel's mailbox is attached once")
        self.mailbox = mailbox
    }

    /// Sends the host's mailbox file to the worker (the `mailbox` message) and attaches the host's
    /// mapping. The file is closed either way: the host keeps only its mapping.
    func sendMailbox(_ mailbox: SharedMailbox.HostEnd) throws(Errno) {
        defer { try? mailbox.file.close() }
        try send(.mailbox, [UInt8](), descriptors: [mailbox.file])
        attach(mailbox.mailbox)
    }

    /// Sends `body` (encoded straight into the mailbox slot when it fits and carries no descriptors).
    func send(_ type: MessageType, _ body: some WireEncodable, descriptors: [FileDescriptor] = []) throws(Errno) {
        guard let mailbox else { return try sendOnSocket(type, body.encoded(), descriptors: descriptors) }
        let bodyCount = body.encodedCount
        guard descriptors.isEmpty, Self.headerSize + bodyCount <= SharedMailbox.slotCapacity else {
            // Announced first: a receiver that sees the announcement waits for the datagram.
            _ = mailbox.post(count: nil)
            return try sendOnSocket(type, body.encoded(), descriptors: descriptors)
        }
        if let processor = currentProcessor() { mailbox.publish(processor: processor) }
        let sleeping = mailbox.post(count: Self.headerSize + bodyCount) { buffer in
            Self.writeHeader(type, into: buffer)
            body.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[Self.headerSize...]))
        }
        guard sleeping else { return }
        // A full socket already holds wake-ups the receiver has yet to read.
        do { try socket.send(Self.header(.wake), nonBlocking: true) } catch .wouldBlock {}
    }

    private func sendOnSocket(_ type: MessageType, _ body: [UInt8], descriptors: [FileDescriptor]) throws(Errno) {
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
        try socket.send(Self.header(.bulk) + BulkHeader(type: type, count: UInt64(body.count)).encoded(), descriptors: [file] + descriptors)
    }

    /// What a `.bulk` message says of the body in its memfd.
    private struct BulkHeader: WireEncodable {
        var type: MessageType
        var count: UInt64

        func encode<Sink: WireSink>(into writer: inout Sink) {
            writer.append(type.rawValue)
            writer.append(UInt16(0))
            writer.append(count)
        }
    }

    /// Every message's first `headerSize` bytes: magic, type, a reserved zero (all little-endian).
    private static func header(_ type: MessageType) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: headerSize) { buffer, count in
            writeHeader(type, into: UnsafeMutableRawBufferPointer(buffer))
            count = headerSize
        }
    }

    /// Writes `header(type)` into the first `headerSize` bytes of `buffer`, without allocating.
    private static func writeHeader(_ type: MessageType, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: type.rawValue.littleEndian, toByteOffset: 4, as: UInt16.self)
        buffer.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
    }

    /// Waits for the next message: spins for `spin` on the mailbox (on the socket before one is
    /// attached), then sleeps in `poll` on the socket and `watching` until `deadline` (nil: no
    /// limit). Returns nil on timeout. When only a watched descriptor (a worker's pidfd) wakes it,
    /// it returns what the socket then holds: the dying worker's report, or `.closed`.
    /// Received descriptors belong to the caller.
    func receive(limit: Int, maximumDescriptors: Int, spin: Duration, deadline: ContinuousClock.Instant?,
                 watching: [FileDescriptor] = []) throws(ExecutionError) -> Received? {
        let start = ContinuousClock.now
        let spinEnd = start + spin
        var nextYield = start + Self.yieldInterval
        var sawPeerOnThisProcessor = false
        var mayLeave = movesOffPeersProcessor
        defer { if sawPeerOnThisProcessor { waitsBesidePeer += 1 } }
        do {
            if announcedOnSocket {
                return try receiveAnnounced(limit: limit, maximumDescriptors: maximumDescriptors, deadline: deadline, watching: watching)
            }
            let mailbox = self.mailbox
            var looks: UInt32 = 0
            while true {
                if let mailbox {
                    switch try mailbox.take() {
                    case .message(let slot): return try parse(slot: slot)
                    case .onSocket: return try receiveAnnounced(limit: limit, maximumDescriptors: maximumDescriptors, deadline: deadline, watching: watching)
                    case .nothing: break
                    }
                    // The clock and the processor checks cost more than a look at the mailbox: a
                    // message is noticed sooner when they come only every few looks.
                    looks &+= 1
                    if looks % Self.looksPerCheck != 0 {
                        ps_cpu_relax()
                        continue
                    }
                } else if try socket.waitReadable(timeoutMilliseconds: 0) {
                    return try receiveFromSocket(limit: limit, maximumDescriptors: maximumDescriptors)
                }
                let now = ContinuousClock.now
                if now < spinEnd {
                    if peerSharesProcessor() {
                        // Spinning here only delays the peer: move away, or let it run at once.
                        sawPeerOnThisProcessor = true
                        if mayLeave { mayLeave = leaveThisProcessor() }
                        if !mayLeave { yieldProcessor() }
                    } else if now < nextYield { ps_cpu_relax() } else {
                        yieldProcessor()
                        nextYield = now + Self.yieldInterval
                    }
                    continue
                }
                mailbox?.setSleeping(true)
                if mailbox?.hasIncoming == true {
                    mailbox?.setSleeping(false)
                    continue
                }
                let ready = try waitForAnyReadable([socket] + watching, timeoutMilliseconds: pollTimeout(until: deadline))
                mailbox?.setSleeping(false)
                if ready.isEmpty { return nil }
                if mailbox?.hasIncoming == true { continue }
                // Woken with nothing published: a wake-up that lost the race with our last look, the
                // peer's last words, or its end closing.
                if !ready.contains(socket), !(try socket.waitReadable(timeoutMilliseconds: 100)) { return .closed }
                let received = try receiveFromSocket(limit: limit, maximumDescriptors: maximumDescriptors)
                guard case .message(let type, _, let descriptors) = received, mailbox != nil else { return received }
                for descriptor in descriptors { try? descriptor.close() }
                guard type == .wake else { throw ProtocolError.unexpected("a \(type) message the mailbox did not announce") }
            }
        } catch let error as ProtocolError {
            throw .malformedResult(error.description)
        } catch {
            throw .system("waiting for the peer: \(error)")
        }
    }

    /// The message the mailbox announced: the next datagram on the socket that is not a wake-up.
    /// Nil when `deadline` passes first; the announcement then stays for the next `receive`.
    private func receiveAnnounced(limit: Int, maximumDescriptors: Int, deadline: ContinuousClock.Instant?,
                                  watching: [FileDescriptor]) throws -> Received? {
        announcedOnSocket = true
        while true {
            let ready = try waitForAnyReadable([socket] + watching, timeoutMilliseconds: pollTimeout(until: deadline))
            if ready.isEmpty { return nil }
            if !ready.contains(socket), !(try socket.waitReadable(timeoutMilliseconds: 100)) {
                announcedOnSocket = false
                return .closed
            }
            let received = try receiveFromSocket(limit: limit, maximumDescriptors: maximumDescriptors)
            if case .message(.wake, _, let descriptors) = received {
                for descriptor in descriptors { try? descriptor.close() }
                continue
            }
            announcedOnSocket = false
            return received
        }
    }

    /// The waits that found the peer on the waiting thread's processor since the last call.
    func takeWaitsBesidePeer() -> Int {
        defer { waitsBesidePeer = 0 }
        return waitsBesidePeer
    }

    /// Publishes the processor this thread runs on and tells whether the peer last ran there too.
    /// Two spinning ends on one processor take turns through `sched_yield` (a round trip 3-4x
    /// slower here), and the scheduler may leave them so for tens of milliseconds while another
    /// processor idles: a wake-up places the woken end beside its waker.
    private func peerSharesProcessor() -> Bool {
        guard let mailbox, let processor = currentProcessor() else { return false }
        mailbox.publish(processor: processor)
        return mailbox.peerRuns(on: processor)
    }

    /// Moves this thread to another processor its affinity allows; false when there is none.
    private func leaveThisProcessor() -> Bool {
        guard let processor = currentProcessor(), (try? leaveProcessor(processor)) == true else { return false }
        if let moved = currentProcessor() { mailbox?.publish(processor: moved) }
        return true
    }

    /// How often a spinning receiver yields its processor, in case the peer waits for it without
    /// having said so (moved here and not run since). A peer that did say so is yielded to at once;
    /// yielding every 2 µs put a system call into most round trips (~0.5-1 µs per query here).
    private static let yieldInterval = Duration.microseconds(20)

    /// Looks at the mailbox between two readings of the clock while spinning (a look with a pause
    /// takes a fraction of a reading and the processor checks that come with it).
    private static let looksPerCheck: UInt32 = 8

    /// Receives one datagram of at most `limit` body bytes with at most `maximumDescriptors`
    /// descriptors (plus a bulk memfd). Received descriptors belong to the caller; when this throws
    /// they are already closed.
    func receiveFromSocket(limit: Int, maximumDescriptors: Int) throws(ProtocolError) -> Received {
        let message: ReceivedMessage
        do {
            message = try socket.receive(maximumLength: Self.inlineLimit + Self.headerSize, maximumDescriptors: maximumDescriptors + 1)
        } catch .connectionReset {
            // The peer closed with datagrams of ours unread (wake-ups it never slept for). The kernel
            // reports that once, ahead of what the peer sent last — a violation report — so read on.
            guard let rest = try? socket.receive(maximumLength: Self.inlineLimit + Self.headerSize,
                                                 maximumDescriptors: maximumDescriptors + 1) else { return .closed }
            message = rest
        } catch {
            throw .unexpected("receiving failed: \(error)")
        }
        var keep = false
        defer { if !keep { for descriptor in message.descriptors { try? descriptor.close() } } }
        if message.bytes.isEmpty && message.descriptors.isEmpty { return .closed }
        guard !message.truncated else { throw .oversized(bytes: UInt64(message.bytes.count), limit: UInt64(Self.inlineLimit)) }
        var reader = WireReader(message.bytes)
        if message.bytes.count == MemoryLayout<ps_violation_report>.size, try reader.read(UInt32.self) == UInt32(PS_VIOLATION_MAGIC) {
            var report = ps_violation_report()
            withUnsafeMutableBytes(of: &report) { $0.copyBytes(from: message.bytes) }
            return .violation(report)
        }
        keep = true
        return try Self.parse(message.bytes, message.descriptors, limit: limit, maximumDescriptors: maximumDescriptors)
    }

    /// A framed message with the descriptors that came with it. The descriptors belong to the
    /// caller when this returns and are closed when it throws.
    private static func parse(_ bytes: [UInt8], _ received: [FileDescriptor], limit: Int, maximumDescriptors: Int) throws(ProtocolError) -> Received {
        var descriptors = received
        var keep = false
        defer { if !keep { for descriptor in descriptors { try? descriptor.close() } } }
        var reader = WireReader(bytes)
        let type = try frameType(magic: try reader.read(), type: try reader.read(), reserved: try reader.read())
        guard type == .bulk else {
            guard descriptors.count <= maximumDescriptors else { throw .malformed(offset: 0, "too many descriptors") }
            keep = true
            return .message(type, Array(bytes[headerSize...]), descriptors)
        }
        guard let inner = MessageType(rawValue: try reader.read()), inner != .bulk else { throw .malformed(offset: 8, "bad bulk type") }
        _ = try reader.read(UInt16.self)
        let length = try reader.read(UInt64.self)
        try reader.finish()
        guard length <= UInt64(limit) else { throw .oversized(bytes: length, limit: UInt64(limit)) }
        guard let file = descriptors.first else { throw .malformed(offset: 8, "bulk message without its memfd") }
        let body = try readBody(file, length: Int(length))
        try? file.close()
        descriptors.removeFirst()
        guard descriptors.count <= maximumDescriptors else { throw .malformed(offset: 0, "too many descriptors") }
        keep = true
        return .message(inner, body, descriptors)
    }

    /// A message in the mailbox slot (never `.bulk`: those carry descriptors). The header is read
    /// once and the body copied out once, since the peer may change the slot meanwhile. A small body
    /// is copied into `smallBody`, whose storage is reused once the caller let go of the last one.
    ///
    /// - Complexity: O(body bytes); no allocation for a small body once the caller let go of the previous one.
    private func parse(slot: UnsafeRawBufferPointer) throws(ProtocolError) -> Received {
        guard slot.count >= Self.headerSize else { throw .malformed(offset: 0, "message ends inside its header") }
        let type = try Self.frameType(magic: UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
                                      type: UInt16(littleEndian: slot.loadUnaligned(fromByteOffset: 4, as: UInt16.self)),
                                      reserved: UInt16(littleEndian: slot.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        guard type != .bulk else { throw .malformed(offset: 4, "a bulk message in the mailbox") }
        let body = UnsafeRawBufferPointer(rebasing: slot[Self.headerSize...])
        guard body.count <= Self.smallBodyCapacity else { return .message(type, Array(body), []) }
        smallBody.removeAll(keepingCapacity: true)
        smallBody.append(contentsOf: body)
        return .message(type, smallBody, [])
    }

    /// The last small message body received from the mailbox: one allocation per channel instead of
    /// one per message (a query's two messages are ~100 bytes each).
    private var smallBody: [UInt8] = []
    /// Largest body copied into `smallBody` (larger ones get an array of their own, so that a channel
    /// keeps about twice this much at most: an array grows by doubling).
    static let smallBodyCapacity = 1024

    /// Checks a frame header's fields and returns its type.
    private static func frameType(magic: UInt32, type: UInt16, reserved: UInt16) throws(ProtocolError) -> MessageType {
        guard magic == Self.magic else { throw .malformed(offset: 0, "bad magic") }
        guard let type = MessageType(rawValue: type) else { throw .malformed(offset: 4, "unknown message type") }
        guard reserved == 0 else { throw .malformed(offset: 6, "nonzero reserved field") }
        return type
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
