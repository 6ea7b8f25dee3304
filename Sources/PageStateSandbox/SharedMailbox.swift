import CPageState
import PageStateKernel
import Synchronization
import SystemPackage

/// Two one-message slots in a small memfd that the host and one worker both map: the fast path of
/// a `MessageChannel`, which carries a message across without a system call when the receiver is
/// spinning (a socket round trip costs 10-50 µs on a virtual machine; this one about 1 µs).
///
/// A sender writes a framed message into its outgoing slot, then publishes it by storing the next
/// sequence number. A receiver spins on that number for a while, then raises its `sleeping` flag,
/// looks once more, and sleeps in `poll` on the socket; a sender that finds the flag raised after
/// publishing sends a wake-up datagram (the two sequentially consistent store-then-load pairs make
/// sure one of them sees the other). Messages with descriptors, or larger than a slot, still travel
/// on the socket; the slot then only announces them.
///
/// Spinning only pays while the two ends run on different processors. Each end publishes the
/// processor it last ran on (in its outgoing slot's header); a receiver that finds its sender on its own
/// processor moves to another one (a worker) or yields to the sender at once (see
/// `MessageChannel.receive`).
///
/// Layout: each direction's slot starts on its own page (host → worker at 4 KiB, worker → host
/// 36 KiB further) with the sequence number (UInt64) at +0, the length (UInt32) at +8, the sender's
/// processor plus one (UInt32, 0 = not yet known) at +12 and the message bytes from +16 on: a
/// message's first 112 bytes lie in the 128-byte pair of cache lines the receiver polls, so a small
/// message crosses between processors with its sequence number instead of after it. The receiver's
/// sleeping flag (UInt32) and the sequence number it last took (UInt64) are each on a cache line of
/// their own 128-byte pair (host → worker at 0 and 128, worker → host at 256 and 384), so that the sender's look at
/// the flag after every post finds a line that rarely changes. (With the flag beside the taken
/// number and the bytes on lines of their own, a round trip of two ~100-byte messages took 2-2.5x as
/// long between the two processors: ~200 ns instead of ~100 when they were close, ~720 instead of
/// ~300-490 when they were far apart; performance.md, session 29.) The worker's death notice
/// (UInt32) is at 512, on a line of its own: the worker links it into its robust-futex list
/// (`ps_worker_death_notice_link`), so that the kernel marks it when the worker dies, and the host
/// reads it to skip a dead spare without a system call (`workerLife`).
///
/// Invariants: the host creates the file and seals it against shrinking and growing, so a worker
/// cannot make the host's mapping fault; only a slot's sender writes its sequence, length and bytes,
/// only its receiver the sleeping flag and the taken sequence. A processor number is a hint: a wrong
/// one costs time, never a message. A wrong taken sequence only decides whether a dead worker's
/// request runs again on a new one (see `peerTookEverything`). Nothing in the worker's slot is
/// trusted: the host checks the sequence number and length and copies the bytes out before parsing
/// them.
final class SharedMailbox {
    /// Largest framed message a slot holds.
    static let slotCapacity = 32 * 1024
    /// Where a slot's bytes start: after its sequence number, length and sender's processor.
    static let slotHeaderSize = 16
    /// From one slot to the next: header and bytes, rounded up to whole pages.
    static let slotStride = (slotHeaderSize + slotCapacity + 4095) / 4096 * 4096
    static let size = 4096 + 2 * slotStride
    /// Where each direction's slot starts.
    static let toWorkerSlot = 4096
    static let toHostSlot = 4096 + slotStride
    /// A length that means "the message is on the socket".
    static let onSocket = UInt32.max
    /// Where the worker's death notice is.
    static let deathNotice = 512

    /// Which end of the channel this process is.
    enum Side { case host, worker }

    /// What the incoming slot holds.
    enum Incoming {
        case nothing
        /// The framed message, still in the shared slot: the peer may change it at any time, so
        /// read each byte once (copy it out) and only until the next `take`.
        case message(UnsafeRawBufferPointer)
        case onSocket
    }

    private let base: UnsafeMutableRawPointer
    private let outgoing: Slot
    private let incoming: Slot
    private var sent: UInt64 = 0
    private var received: UInt64 = 0
    private var publishedProcessor: UInt32 = 0

    /// One direction: its header, bytes, and its receiver's flag and taken number.
    private struct Slot {
        let sequence: UnsafeMutablePointer<Atomic<UInt64>>
        let length: UnsafeMutablePointer<Atomic<UInt32>>
        let senderProcessor: UnsafeMutablePointer<Atomic<UInt32>>
        let receiverSleeping: UnsafeMutablePointer<Atomic<UInt32>>
        let receiverTaken: UnsafeMutablePointer<Atomic<UInt64>>
        let bytes: UnsafeMutableRawPointer

        /// The slot at `slot` (page-aligned), its receiver's flag and taken number at `receiver`
        /// and `receiver + 128`.
        init(base: UnsafeMutableRawPointer, slot: Int, receiver: Int) {
            sequence = (base + slot).bindMemory(to: Atomic<UInt64>.self, capacity: 1)
            length = (base + slot + 8).bindMemory(to: Atomic<UInt32>.self, capacity: 1)
            senderProcessor = (base + slot + 12).bindMemory(to: Atomic<UInt32>.self, capacity: 1)
            receiverSleeping = (base + receiver).bindMemory(to: Atomic<UInt32>.self, capacity: 1)
            receiverTaken = (base + receiver + 128).bindMemory(to: Atomic<UInt64>.self, capacity: 1)
            bytes = base + slot + SharedMailbox.slotHeaderSize
        }
    }

    /// Creates the shared file (host side): zero-filled, sealed against shrinking and growing.
    static func createFile() throws(Errno) -> FileDescriptor {
        let file = try FileDescriptor.memfd(name: "pagestate-mailbox")
        do {
            try file.resize(to: Int64(size))  // swift-system throws Errno, untyped
            try file.addSeals([.shrink, .grow, .seal])
        } catch {
            try? file.close()
            throw error as? Errno ?? .ioError
        }
        return file
    }

    /// A mailbox file and the host's mapping of it, the file still to be sent to the worker.
    typealias HostEnd = (file: FileDescriptor, mailbox: SharedMailbox)

    /// A new mailbox file and the host's mapping of it.
    static func createForHost() throws(Errno) -> HostEnd {
        let file = try createFile()
        do { return (file, try SharedMailbox(mapping: file, as: .host)) } catch {
            try? file.close()
            throw error
        }
    }

    /// Maps `file` (made by `createFile`) as `side`'s end. The descriptor may be closed afterwards.
    init(mapping file: FileDescriptor, as side: Side) throws(Errno) {
        base = try mapMemory(length: Self.size, protection: [.read, .write], flags: .shared, descriptor: file)
        let toWorker = Slot(base: base, slot: Self.toWorkerSlot, receiver: 0)
        let toHost = Slot(base: base, slot: Self.toHostSlot, receiver: 256)
        (outgoing, incoming) = side == .host ? (toWorker, toHost) : (toHost, toWorker)
        // The host maps mailboxes ahead: its first touch of the first page (a page fault, ~1-2 µs)
        // happens here, not when a spawn reads the death notice there.
        if side == .host { incoming.receiverSleeping.pointee.store(0, ordering: .relaxed) }
    }

    deinit { try? unmapMemory(base, length: Self.size) }

    /// Publishes a framed message of `count` bytes that `write` puts into the slot, or, when
    /// `count` is nil, announces one sent on the socket. Returns whether the receiver sleeps (and
    /// must be woken by a datagram).
    ///
    /// - Complexity: O(count).
    func post(count: Int?, _ write: (UnsafeMutableRawBufferPointer) -> Void = { _ in }) -> Bool {
        if let count {
            precondition(count <= Self.slotCapacity)
            write(UnsafeMutableRawBufferPointer(start: outgoing.bytes, count: count))
        }
        outgoing.length.pointee.store(count.map { UInt32($0) } ?? Self.onSocket, ordering: .relaxed)
        sent += 1
        outgoing.sequence.pointee.store(sent, ordering: .sequentiallyConsistent)
        return outgoing.receiverSleeping.pointee.load(ordering: .sequentiallyConsistent) != 0
    }

    /// Takes the next message if one was published. A sequence number other than the next one,
    /// or a length over the slot, is a broken protocol.
    ///
    /// - Complexity: O(1).
    func take() throws(ProtocolError) -> Incoming {
        let sequence = incoming.sequence.pointee.load(ordering: .acquiring)
        if sequence == received { return .nothing }
        guard sequence == received &+ 1 else {
            throw .malformed(offset: 0, "mailbox sequence \(sequence) after \(received)")
        }
        received = sequence
        incoming.receiverTaken.pointee.store(received, ordering: .releasing)
        let length = incoming.length.pointee.load(ordering: .relaxed)
        if length == Self.onSocket { return .onSocket }
        guard length <= UInt32(Self.slotCapacity) else {
            throw .oversized(bytes: UInt64(length), limit: UInt64(Self.slotCapacity))
        }
        return .message(UnsafeRawBufferPointer(start: incoming.bytes, count: Int(length)))
    }

    /// Whether the peer took every message this side published — as the peer says: a dead peer that
    /// says no never saw the last one, a live one may lie.
    var peerTookEverything: Bool { outgoing.receiverTaken.pointee.load(ordering: .acquiring) == sent }

    /// Whether a message is published and not yet taken.
    var hasIncoming: Bool { incoming.sequence.pointee.load(ordering: .sequentiallyConsistent) != received }

    /// Tells the peer which processor this side runs on (a store only when it changed).
    func publish(processor: UInt32) {
        guard processor &+ 1 != publishedProcessor else { return }
        publishedProcessor = processor &+ 1
        outgoing.senderProcessor.pointee.store(publishedProcessor, ordering: .relaxed)
    }

    /// Whether the peer last said it runs on `processor`.
    func peerRuns(on processor: UInt32) -> Bool {
        incoming.senderProcessor.pointee.load(ordering: .relaxed) == processor &+ 1
    }

    /// What the worker's death notice says (host side): a hint, written by the worker and the kernel.
    enum WorkerLife: Equatable {
        /// No notice linked yet (the worker has not mapped the mailbox, or could not register).
        case unknown
        case alive
        case dead
    }

    /// The worker's death notice: a pointer into this mailbox's mapping, to keep where the mailbox
    /// object is not at hand (a ready worker's entry: one dependent memory read fewer on a spawn's
    /// path, performance.md, session 41).
    ///
    /// Invariant: valid only while this mailbox is alive (its mapping is unmapped at its `deinit`).
    struct DeathNotice {
        fileprivate let word: UnsafePointer<Atomic<UInt32>>

        /// Where the notice is (to prefetch it; reading it goes through `workerLife`).
        var address: UInt { UInt(bitPattern: word) }

        /// What the notice says now (host side).
        ///
        /// - Complexity: O(1), no system call.
        var workerLife: WorkerLife {
            let word = word.pointee.load(ordering: .acquiring)
            return word == 0 ? .unknown : word & UInt32(PS_DEATH_NOTICE_DIED) != 0 ? .dead : .alive
        }
    }

    /// The worker's death notice in this mailbox (valid while the mailbox lives).
    var deathNotice: DeathNotice {
        DeathNotice(word: UnsafePointer((base + Self.deathNotice).bindMemory(to: Atomic<UInt32>.self, capacity: 1)))
    }

    /// What the worker's death notice says now (host side).
    ///
    /// - Complexity: O(1), no system call.
    var workerLife: WorkerLife { deathNotice.workerLife }

    /// Links the death notice into this thread's robust-futex list (worker side), so that the kernel
    /// marks it when the worker dies. Does nothing unless `ps_worker_death_notice_register()` succeeded.
    func linkDeathNotice() {
        ps_worker_death_notice_link((base + Self.deathNotice).assumingMemoryBound(to: UInt32.self))
    }

    /// Raises or lowers this side's sleeping flag (raise it, then check `hasIncoming`, then sleep).
    func setSleeping(_ sleeping: Bool) {
        incoming.receiverSleeping.pointee.store(sleeping ? 1 : 0, ordering: .sequentiallyConsistent)
    }
}
