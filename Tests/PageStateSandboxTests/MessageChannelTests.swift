@testable import PageStateSandbox
import CPageState
import Dispatch
import Glibc
import PageState
import PropertyChecking
import SystemPackage
import Testing

/// Both ends of a channel in this process: a socket pair and one mailbox file mapped twice.
/// Sendable because each end is used by one thread at a time.
struct ChannelPair: @unchecked Sendable {
    let host: MessageChannel
    let worker: MessageChannel
    /// The mailbox file, mapped once more for tests that play a hostile worker.
    let raw: UnsafeMutableRawPointer

    init() throws {
        let (a, b) = try FileDescriptor.socketPair()
        host = MessageChannel(socket: a)
        worker = MessageChannel(socket: b)
        let file = try SharedMailbox.createFile()
        defer { try? file.close() }
        raw = try mapMemory(length: SharedMailbox.size, protection: [.read, .write], flags: .shared, descriptor: file)
        host.attach(try SharedMailbox(mapping: file, as: .host))
        worker.attach(try SharedMailbox(mapping: file, as: .worker))
    }

    /// Closes what the pair owns; a test that closed the worker's socket itself says so, because
    /// closing a number twice could close a descriptor another test opened in between.
    func close(workerSocketClosed: Bool = false) {
        try? host.socket.close()
        if !workerSocketClosed { try? worker.socket.close() }
        try? unmapMemory(raw, length: SharedMailbox.size)
    }
}

/// One message of the property test: who sends it, its body length, whether a descriptor travels
/// with it, and whether the receiver spins or goes straight to sleep.
struct ChannelMessage: Sendable, CustomStringConvertible {
    var fromHost: Bool
    var length: Int
    var withDescriptor: Bool
    var spin: Bool

    /// Lengths around the mailbox slot's capacity and the socket's inline limit, and small ones.
    static let lengths = [0, 1, 70, SharedMailbox.slotCapacity - MessageChannel.headerSize,
                          SharedMailbox.slotCapacity - MessageChannel.headerSize + 1, 50_000, MessageChannel.inlineLimit + 1]
    static let generator = zip(Gen.bool, Gen.int(in: 0...(lengths.count - 1)), Gen.int(in: 0...3), Gen.bool)
        .map { ChannelMessage(fromHost: $0, length: lengths[$1], withDescriptor: $2 == 0, spin: $3) }

    var description: String { "\(fromHost ? "host→worker" : "worker→host") \(length) B\(withDescriptor ? " +fd" : "")\(spin ? "" : " (receiver sleeps)")" }
}

@Suite("Host ⇄ worker channel: mailbox fast path, socket fallback, hostile peers")
struct MessageChannelTests {
    static func body(_ length: Int, seed: Int) -> [UInt8] { (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

    /// Every message arrives once, in order, with its bytes and descriptors, whichever path it takes;
    /// a body kept while later messages arrive stays intact (small ones share a reused buffer).
    @Test(.shrinking) func messagesArriveIntactOnEveryPath() async throws {
        await checkProperty(count: 200, input: ChannelMessage.generator.array(of: 1...12)) { messages in
            let pair = try ChannelPair()
            defer { pair.close() }
            var kept: [(sent: [UInt8], received: [UInt8])] = []
            defer { for (index, body) in kept.enumerated() { #expect(body.received == body.sent, "message \(index), kept") } }
            for (index, message) in messages.enumerated() {
                let (sender, receiver) = message.fromHost ? (pair.host, pair.worker) : (pair.worker, pair.host)
                let body = Self.body(message.length, seed: index)
                let descriptors = message.withDescriptor ? [try FileDescriptor.memfd(name: "test")] : []
                defer { for descriptor in descriptors { try? descriptor.close() } }
                try sender.send(.hostCall, body, descriptors: descriptors)
                let received = try receiver.receive(limit: 1 << 20, maximumDescriptors: 1, spin: message.spin ? .microseconds(50) : .zero,
                                                    deadline: .now + .seconds(5))
                guard case .message(.hostCall, let bytes, let files) = received else {
                    Issue.record("message \(index) (\(message)) arrived as \(String(describing: received))")
                    return
                }
                #expect(bytes == body, "message \(index) (\(message))")
                kept.append((body, bytes))
                #expect(files.count == descriptors.count, "message \(index) (\(message))")
                for file in files { try? file.close() }
            }
        }
    }

    /// A receiver asleep in poll is woken by a message posted to the mailbox.
    @Test func aSleepingReceiverIsWoken() throws {
        let pair = try ChannelPair()
        defer { pair.close() }
        let rounds = 200
        let echo = DispatchQueue(label: "echo")
        echo.async {
            for _ in 0..<rounds {
                guard case .message(_, let bytes, _)? = try? pair.worker.receive(limit: 1 << 20, maximumDescriptors: 0, spin: .zero,
                                                                                 deadline: .now + .seconds(5)) else { return }
                try? pair.worker.send(.result, bytes)
            }
        }
        for round in 0..<rounds {
            if round % 3 == 0 { usleep(200) }  // the echo thread is asleep by now
            let body = Self.body(round % 100, seed: round)
            try pair.host.send(.execute, body)
            let received = try pair.host.receive(limit: 1 << 20, maximumDescriptors: 0, spin: round % 2 == 0 ? .zero : .microseconds(100),
                                                 deadline: .now + .seconds(5))
            guard case .message(.result, let bytes, _) = received else {
                Issue.record("round \(round): \(String(describing: received))")
                return
            }
            #expect(bytes == body)
        }
        echo.sync {}
    }

    @Test func nothingPublishedTimesOut() throws {
        let pair = try ChannelPair()
        defer { pair.close() }
        let started = ContinuousClock.now
        #expect(try pair.host.receive(limit: 100, maximumDescriptors: 0, spin: .microseconds(100), deadline: .now + .milliseconds(50)) == nil)
        #expect(ContinuousClock.now - started >= .milliseconds(50))
    }

    /// A receiver whose deadline passes between the mailbox's announcement of a message with
    /// descriptors and the datagram itself (an idle worker waits 2 ms at a time) gets the message
    /// at its next receive, not a protocol error.
    @Test func anAnnouncementOutlivesTheDeadline() throws {
        let pair = try ChannelPair()
        defer { pair.close() }
        _ = try #require(pair.host.mailbox).post(count: nil)
        #expect(try pair.worker.receive(limit: 100, maximumDescriptors: 1, spin: .microseconds(50), deadline: .now + .milliseconds(20)) == nil)
        var datagram: [UInt8] = []
        withUnsafeBytes(of: MessageChannel.magic.littleEndian) { datagram += $0 }
        withUnsafeBytes(of: MessageType.execute.rawValue.littleEndian) { datagram += $0 }
        datagram += [0, 0, 7, 8, 9]
        let file = try FileDescriptor.memfd(name: "test")
        defer { try? file.close() }
        try pair.host.socket.send(datagram, descriptors: [file])
        let received = try pair.worker.receive(limit: 100, maximumDescriptors: 1, spin: .zero, deadline: .now + .seconds(5))
        guard case .message(.execute, let body, let files)? = received else {
            Issue.record("expected the announced message, got \(String(describing: received))")
            return
        }
        #expect(body == [7, 8, 9] && files.count == 1)
        for file in files { try? file.close() }
        // Nothing else is pending: the next receive times out.
        #expect(try pair.worker.receive(limit: 100, maximumDescriptors: 1, spin: .zero, deadline: .now + .milliseconds(20)) == nil)
    }

    @Test func aClosedPeerIsReported() throws {
        let pair = try ChannelPair()
        defer { pair.close(workerSocketClosed: true) }
        try pair.worker.socket.close()
        guard case .closed? = try pair.host.receive(limit: 100, maximumDescriptors: 0, spin: .zero, deadline: .now + .seconds(5)) else {
            Issue.record("expected .closed")
            return
        }
    }

    /// A worker controls its slot: a skipped sequence number, a length past the slot, a garbage
    /// frame, a frame shorter than its header, a bulk frame (whose memfd cannot travel in the slot)
    /// and a message on the socket the mailbox did not announce are each a typed error.
    @Test(arguments: ["skipped sequence", "length past the slot", "garbage frame", "short frame", "bulk frame", "unannounced datagram"])
    func hostileSlotsAreRejected(_ attack: String) throws {
        let pair = try ChannelPair()
        defer { pair.close() }
        let toHostSlot = pair.raw + SharedMailbox.toHostSlot
        let toHostSequence = toHostSlot.assumingMemoryBound(to: UInt64.self)
        let toHostLength = (toHostSlot + 8).assumingMemoryBound(to: UInt32.self)
        let toHostBytes = toHostSlot + SharedMailbox.slotHeaderSize
        switch attack {
        case "skipped sequence":
            toHostLength.pointee = 8
            toHostSequence.pointee = 2
        case "length past the slot":
            toHostLength.pointee = UInt32(SharedMailbox.slotCapacity + 1)
            toHostSequence.pointee = 1
        case "garbage frame":
            for offset in 0..<16 { toHostBytes.storeBytes(of: UInt8(0xEE), toByteOffset: offset, as: UInt8.self) }
            toHostLength.pointee = 16
            toHostSequence.pointee = 1
        case "short frame":
            for (offset, byte) in [0x50, 0x53, 0x57, 0x4B, 11].enumerated() { toHostBytes.storeBytes(of: UInt8(byte), toByteOffset: offset, as: UInt8.self) }
            toHostLength.pointee = 5
            toHostSequence.pointee = 1
        case "bulk frame":
            for (offset, byte) in [0x50, 0x53, 0x57, 0x4B, 20, 0, 0, 0, 11, 0, 0, 0].enumerated() {
                toHostBytes.storeBytes(of: UInt8(byte), toByteOffset: offset, as: UInt8.self)
            }
            toHostLength.pointee = 12
            toHostSequence.pointee = 1
        default:
            try pair.worker.socket.send([0x50, 0x53, 0x57, 0x4B, 11, 0, 0, 0])  // a framed result, unannounced
        }
        do {
            let received = try pair.host.receive(limit: 1 << 20, maximumDescriptors: 1, spin: .microseconds(50), deadline: .now + .seconds(5))
            Issue.record("\(attack) was accepted: \(String(describing: received))")
        } catch {
            guard case .malformedResult = error else { Issue.record("\(attack): \(error)"); return }
        }
    }

    @Test("a send to a peer that stopped reading gives up after the socket's send timeout; a spawned worker's socket has one",
          .timeLimit(.minutes(1)))
    func sendsToAPeerThatStoppedReadingEnd() throws {
        let (sender, silent) = try FileDescriptor.socketPair()
        defer { try? sender.close(); try? silent.close() }
        #expect(try sender.sendTimeout() == .zero, "waits forever by default")
        try sender.setSendTimeout(.milliseconds(100))  // whole jiffies at any HZ: read back exactly
        #expect(try sender.sendTimeout() == .milliseconds(100))
        let failure = #expect(throws: Errno.self) {
            while true { try sender.send([UInt8](repeating: 7, count: 4096)) }  // until the buffer is full
        }
        #expect(failure == .resourceTemporarilyUnavailable)
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = 1
        let launcher = Launcher(configuration: configuration)
        defer { launcher.shutDown() }
        let spawned = try launcher.spawn()
        defer { spawned.close() }
        #expect(try spawned.channel.socket.sendTimeout() == Launcher.Spawned.sendTimeout)
    }

    /// Regression: a worker that dies with wake-ups unread made the kernel report ECONNRESET ahead
    /// of its last datagram, and the host lost the seccomp report it had just written.
    @Test func aPeerThatDiesWithWakeUpsUnreadStillDeliversItsLastDatagram() throws {
        let (hostSocket, workerSocket) = try FileDescriptor.socketPair()
        defer { try? hostSocket.close() }
        let file = try SharedMailbox.createFile()
        defer { try? file.close() }
        let host = MessageChannel(socket: hostSocket)
        host.attach(try SharedMailbox(mapping: file, as: .host))
        let worker = try SharedMailbox(mapping: file, as: .worker)
        worker.setSleeping(true)
        try host.send(.execute, [1])  // wakes the "sleeping" worker with a datagram it never reads
        var report = ps_violation_report()
        report.magic = UInt32(PS_VIOLATION_MAGIC)
        report.kind = UInt32(PS_VIOLATION_SYSCALL)
        report.syscall = 257
        try workerSocket.send(withUnsafeBytes(of: report) { Array($0) })
        try workerSocket.close()
        guard case .violation(let received) = try host.receiveFromSocket(limit: 0, maximumDescriptors: 0) else {
            Issue.record("the report was lost")
            return
        }
        #expect(received.syscall == 257)
    }

    /// The mailbox file cannot be shrunk or grown by the worker it is handed to.
    @Test func theMailboxFileIsSealed() throws {
        let file = try SharedMailbox.createFile()
        defer { try? file.close() }
        #expect(try file.seals().isSuperset(of: [.shrink, .grow, .seal]))
        #expect(throws: (any Error).self) { try file.resize(to: 0) }
    }
}
