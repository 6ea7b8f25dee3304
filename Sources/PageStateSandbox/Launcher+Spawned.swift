import PageStateKernel
import SystemPackage

extension Launcher {
    /// A forked worker: the request it answered, its pid, a pidfd for it, the host's channel to it,
    /// and, once read, its first message. The launcher answers a fork only once the worker said
    /// something, so whoever reads the answer (usually the replenishing thread, off any spawn's path)
    /// also reads the `ready` and sends the worker its mailbox: a spawn that takes such a spare has
    /// nothing left to wait for or send.
    ///
    /// Invariant: `channel` has a mailbox attached only if `greeting` is `ready`, and the worker was
    /// then sent that mailbox.
    struct Spawned {
        /// The launcher request this worker answered.
        var request: UInt64
        var pid: ProcessID
        var pidfd: FileDescriptor
        var channel: MessageChannel
        /// The worker's first message, if it was read: `ready`, or what it said before it failed.
        var greeting: Result<Received, ProtocolError>?

        init(request: UInt64, pid: ProcessID, pidfd: FileDescriptor, socket: FileDescriptor) {
            self.request = request
            self.pid = pid
            self.pidfd = pidfd
            // A worker that stops reading its socket lets the host's socket buffer fill: a send
            // there then fails (the worker is discarded) instead of waiting for it forever.
            try? socket.setSendTimeout(Self.sendTimeout)
            channel = MessageChannel(socket: socket)
        }

        /// How long the host's sends to a worker wait for room in its socket.
        static let sendTimeout: Duration = .seconds(5)

        /// Reads the worker's first message if it is already there (never waits) and answers `ready`
        /// with the last of `mailboxes` (taken only then), if there is one.
        mutating func greetIfReady(takingMailboxFrom mailboxes: inout [SharedMailbox.HostEnd]) {
            guard greeting == nil, (try? channel.socket.waitReadable(timeoutMilliseconds: 0)) == true else { return }
            let received = Result { () throws(ProtocolError) in try channel.receiveFromSocket(limit: 0, maximumDescriptors: 0) }
            greeting = received
            guard case .success(.message(.ready, _, _)) = received, let mailbox = mailboxes.popLast() else { return }
            do { try channel.sendMailbox(mailbox) } catch {
                greeting = .success(.closed)  // the worker died after its `ready`: the spawn finds out why
            }
        }

        func close() {
            try? pidfd.close()
            try? channel.socket.close()
        }
    }
}

/// Whether a worker that has run no guest code has exited: its death notice says so without a
/// system call once it mapped `mailbox` (`SharedMailbox.workerLife`); else its pidfd is asked
/// (one `poll`, readable once it exited).
///
/// - Complexity: O(1).
func workerHasExited(mailbox: SharedMailbox?, pidfd: FileDescriptor) -> Bool {
    switch mailbox?.workerLife ?? .unknown {
    case .alive: false
    case .dead: true
    case .unknown: (try? pidfd.waitReadable(timeoutMilliseconds: 0)) != false
    }
}
