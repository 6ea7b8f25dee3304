import CPageState
import PageStateKernel
import PageStateMemory
import PageStateTracking
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The worker side of a sandbox: one process per guest, forked by the launcher, confined by seccomp
/// before it runs any guest code. It keeps the guest's memories mapped between executions, applies
/// only the pages the host says changed, runs entry points, and returns an update's changed pages in
/// a sealed file. Single-threaded.
final class WorkerServer {
    private let channel: MessageChannel
    private let runtime: WorkerRuntime
    private var session: GuestSession?
    /// Allocator files the host handed over, by identity (the host mirrors this set; results tell it
    /// which ones were let go of).
    private var allocators: [UInt64: PageAllocator] = [:]
    /// Backs the worker's `PageMap`s, which never allocate here: results go to sealed files. Made at
    /// the first image, not at spawn.
    private var placeholder: PageAllocator?
    /// A result file the host prepared for the next update (the worker's own: no one else gets it).
    private var preparedResult: FileDescriptor?
    private var nextCallID: UInt64 = 0
    /// Whether files were handed over or the memories' pages changed since allocators were last
    /// looked at: only then can one have been let go of (a query on unchanged memories skips the look, ~60 ns).
    private var allocatorsMayBeUnused = false
    /// The entry point the last execution ran, found again without hashing its name (valid because
    /// `runtime`, a `let` value, never changes).
    private var lastEntryPoint: (name: String, body: EntryPoint)?
    /// How long to poll for the next message before sleeping (the host's setting, from its last message).
    private var spinMicroseconds: UInt32 = 0
    /// Result files no page of the memories uses any more, unmapped and closed once the worker is
    /// idle rather than while the host waits for it: letting go of a dead 4,096-page file takes
    /// ~3 ms here, more than the host's adoption it would otherwise overlap.
    private let deadResultFiles = DeferredRelease()

    /// Exit statuses when the worker cannot go on (the host reports them as `workerExited`).
    enum ExitStatus: Int32 {
        case setupFailed = 120
        case confinementFailed = 121
        case protocolBroken = 122
    }

    init(socket: FileDescriptor, runtime: WorkerRuntime) throws {
        channel = MessageChannel(socket: socket, movesOffPeersProcessor: true)
        self.runtime = runtime
        if TrackerKind.best == .asyncWriteProtect { try AsyncWriteProtectTracker.prepareForConfinement() }
    }

    /// Confines the process, says it is ready, and serves until the host closes the socket.
    func run() -> Never {
        _ = ps_worker_death_notice_register()  // if it fails, the host asks the kernel whether a spare lives
        guard ps_worker_confine(channel.socket.rawValue) == 0 else { exit(ExitStatus.confinementFailed.rawValue) }
        do { try channel.send(.ready, [UInt8]()) } catch { exit(ExitStatus.protocolBroken.rawValue) }
        while true {
            let received: Received?
            do {
                received = try channel.receive(limit: 1 << 30, maximumDescriptors: ExecuteMessage.maximumFiles,
                                               spin: .microseconds(spinMicroseconds),
                                               deadline: deadResultFiles.count == 0 ? nil : .now + Self.idleBeforeReleasing)
            } catch {
                exit(ExitStatus.protocolBroken.rawValue)
            }
            switch received {
            case .message(.execute, let body, let descriptors): serve(body, descriptors)
            case .message(.mailbox, _, let descriptors) where channel.mailbox == nil && descriptors.count == 1:
                do {
                    let mailbox = try SharedMailbox(mapping: descriptors[0], as: .worker)
                    mailbox.linkDeathNotice()
                    channel.attach(mailbox)
                } catch {
                    exit(ExitStatus.setupFailed.rawValue)
                }
                try? descriptors[0].close()
            case nil: deadResultFiles.releaseOldest()  // idle
            case .closed: exit(0)
            default: exit(ExitStatus.protocolBroken.rawValue)
            }
        }
    }

    private func serve(_ body: [UInt8], _ descriptors: [FileDescriptor]) {
        let message: ExecuteMessage
        do { message = try ExecuteMessage(decoding: body, inputLimit: 1 << 30) } catch { exit(ExitStatus.protocolBroken.rawValue) }
        guard message.files.count == descriptors.count else { exit(ExitStatus.protocolBroken.rawValue) }
        spinMicroseconds = message.spinMicroseconds
        var result: ResultMessage
        var captured: CapturedUpdate?
        do {
            try prepare(message, descriptors)
            (result, captured) = try execute(message.request)
        } catch {
            result = .failure(error)
        }
        do {
            try channel.send(.result, result.reply(to: message.requestID, forgotten: releaseUnusedAllocators()),
                             descriptors: captured?.file.map { [$0] } ?? [])
        } catch {
            exit(ExitStatus.protocolBroken.rawValue)
        }
        // The host adopts the result while this worker brings its own mappings up to date, or undoes
        // a query's writes (the next message waits in the mailbox meanwhile). Failing now would leave
        // them off the host's versions: the worker exits and the guest's next execution gets a fresh one.
        do {
            if let captured { try commit(captured) } else { try session?.finishQuery() }
        } catch {
            exit(ExitStatus.setupFailed.rawValue)
        }
    }

    // MARK: Memory

    /// How long the worker waits for its next message before it lets go of a dead result file.
    static let idleBeforeReleasing = Duration.milliseconds(2)
    /// Dead result files kept at most after a commit; the oldest beyond are let go of at once.
    static let maximumDeadResultFiles = 8

    /// Takes over the message's files and brings the mappings to the versions it describes.
    private func prepare(_ message: ExecuteMessage, _ descriptors: [FileDescriptor]) throws(ExecutionError) {
        if !message.files.isEmpty || message.heap != .unchanged || message.stable != .unchanged { allocatorsMayBeUnused = true }
        var layerFiles: [Int: FileDescriptor] = [:]
        if case .image = message.heap { allocators = [:] }
        for (index, (entry, descriptor)) in zip(message.files, descriptors).enumerated() {
            switch entry {
            case .allocator(let identity, let length):
                do {
                    allocators[identity] = try PageAllocator.attach(AllocatorDescription(descriptor: descriptor, identity: identity, length: length))
                } catch {
                    throw .workerFailure("attaching allocator \(identity): \(error)")
                }
            case .layer:
                layerFiles[index] = descriptor
            case .resultFile:
                try? preparedResult?.close()
                preparedResult = descriptor
            }
        }
        defer { for descriptor in layerFiles.values { try? descriptor.close() } }
        switch (message.heap, message.stable) {
        case (.unchanged, .unchanged):
            guard session != nil else { throw .workerFailure("no memory image received yet") }
        case (.image(let heapSize, let heapCapacity, let heapLayers, let heapPages),
              .image(let stableSize, let stableCapacity, let stableLayers, let stablePages)):
            session = nil
            let heap = try map(size: heapSize, layers: heapLayers, pages: heapPages, files: &layerFiles)
            let stable = try map(size: stableSize, layers: stableLayers, pages: stablePages, files: &layerFiles)
            // A worker has one thread (its filter forbids starting more): its own faults are all.
            session = try GuestSession(heap: heap, heapCapacity: heapCapacity, stable: stable, stableCapacity: stableCapacity,
                                       restoreThreads: 1, faultScope: .callingThread)
        default:
            guard let session else { throw .workerFailure("memory changes before any image") }
            let (heap, heapSize) = try changed(session.heap.memory.shown, message.heap, current: session.heapSize)
            let (stable, stableSize) = try changed(session.stable.memory.shown, message.stable, current: session.stableSize)
            try session.synchronize(heap: heap, stable: stable, heapSize: heapSize, stableSize: stableSize)
        }
    }

    /// Lets go of the host's allocators no page of the memories refers to any more (each holds a
    /// descriptor, and descriptors are limited) and returns their identities for the host.
    ///
    /// - Complexity: O(allocators) once files were handed over or the memories changed; O(1) otherwise.
    private func releaseUnusedAllocators() -> [UInt64] {
        guard allocatorsMayBeUnused else { return [] }
        allocatorsMayBeUnused = false
        var released: [UInt64] = []
        for identity in Array(allocators.keys) where isKnownUniquelyReferenced(&allocators[identity]!) {
            allocators[identity] = nil
            released.append(identity)
        }
        return released
    }

    private func map(size: UInt64, layers: [[RunReference]], pages: [PageReference],
                     files: inout [Int: FileDescriptor]) throws(ExecutionError) -> PageMap {
        var mapped: [any PageLayer] = []
        for runs in layers {
            var fileRuns: [FileRun] = []
            var taken: [Int: FileDescriptor] = [:]
            for run in runs {
                guard let descriptor = taken[Int(run.file)] ?? files.removeValue(forKey: Int(run.file)) else {
                    throw .workerFailure("layer run names file \(run.file), which is not a layer file of this message")
                }
                taken[Int(run.file)] = descriptor
                fileRuns.append(FileRun(firstPage: run.firstPage, pageCount: run.pageCount, descriptor: descriptor, offset: run.offset))
            }
            do { mapped.append(try MappedRunsLayer(runs: fileRuns)) } catch { throw .workerFailure("mapping a layer: \(error)") }
        }
        if placeholder == nil {
            do { placeholder = try PageAllocator(options: .init(backing: .memfd(name: "pagestate-worker"))) } catch {
                throw .workerFailure("creating the worker's placeholder allocator: \(error)")
            }
        }
        var map = PageMap(allocator: placeholder!, layers: mapped)
        map.apply(try resolve(pages))
        map.grow(toPages: size)
        return map
    }

    private func changed(_ shown: PageMap, _ update: MemoryUpdate, current: UInt64) throws(ExecutionError) -> (PageMap, UInt64) {
        switch update {
        case .unchanged: return (shown, current)
        case .image: throw .workerFailure("an image for one memory and changes for the other")
        case .changes(let size, let pages):
            var newer = shown
            newer.apply(try resolve(pages))
            newer.grow(toPages: size)
            return (newer, size)
        }
    }

    private func resolve(_ pages: [PageReference]) throws(ExecutionError) -> PageDelta {
        var resolved: [(index: PageIndex, page: Page)] = []
        resolved.reserveCapacity(pages.count)
        for reference in pages {
            guard let allocator = allocators[reference.allocator] else {
                throw .workerFailure("page \(reference.index) names unknown allocator \(reference.allocator)")
            }
            do { resolved.append((reference.index, try allocator.page(at: reference.place))) } catch {
                throw .workerFailure("resolving page \(reference.index): \(error)")
            }
        }
        return PageDelta(resolved)
    }

    // MARK: Execution

    private func execute(_ request: ExecutionRequest) throws(ExecutionError) -> (ResultMessage, CapturedUpdate?) {
        guard let session else { throw .workerFailure("no memory image received yet") }
        let body: EntryPoint
        if let last = lastEntryPoint, last.name == request.entryPoint {
            body = last.body
        } else {
            guard let found = runtime.entryPoint(named: request.entryPoint) else { throw .unknownEntryPoint(request.entryPoint) }
            body = found
            lastEntryPoint = (request.entryPoint, found)
        }
        guard request.kind == .update else {
            let output = try session.startQuery(body, request, hostCall: hostCall)
            return (.success(.init(output: output, heapSize: session.heapSize, stableSize: session.stableSize, grownPages: 0,
                                   heapPages: [], stablePages: [])), nil)
        }
        let update = try session.runUpdate(body, request, hostCall: hostCall)
        let heapChanged = session.heap.memory.changedPages(update.heapDirty)
        let stableChanged = session.stable.memory.changedPages(update.stableDirty)
        let captured: CapturedUpdate
        if heapChanged.isEmpty && stableChanged.isEmpty {
            captured = CapturedUpdate(update: update, file: nil, heapPages: [], stablePages: [])
        } else {
            do {
                let buffers = heapChanged.map { session.heap.memory.bytes(ofPage: $0) } + stableChanged.map { session.stable.memory.bytes(ofPage: $0) }
                let prepared = preparedResult
                preparedResult = nil
                let (descriptor, written) = try SealedPageFile.write(buffers, into: prepared)
                let shift = update.reportedOffsetShift
                let places = shift == 0 ? written : written.map { PageLocation.Place(offset: $0.offset &+ shift, tag: $0.tag) }
                captured = CapturedUpdate(update: update, file: descriptor,
                                          heapPages: zip(heapChanged, places).map { PageLocation(index: $0, place: $1) },
                                          stablePages: zip(stableChanged, places[heapChanged.count...]).map { PageLocation(index: $0, place: $1) })
            } catch {
                try? session.rollback(update)
                throw .workerFailure("writing the result file: \(error)")
            }
        }
        return (.success(.init(output: update.output, heapSize: update.heapSize, stableSize: update.stableSize,
                               grownPages: update.grownPages, heapPages: captured.heapPages, stablePages: captured.stablePages)),
                captured)
    }

    /// An update whose changed pages are in a sealed result file, sent to the host but not yet part
    /// of this worker's own versions.
    private struct CapturedUpdate {
        var update: GuestSession.Update
        var file: FileDescriptor?
        var heapPages: [PageLocation]
        var stablePages: [PageLocation]
    }

    /// Makes a sent update's pages this worker's versions too (the host adopted the same file).
    private func commit(_ captured: CapturedUpdate) throws(ExecutionError) {
        guard let session else { throw .workerFailure("no memory image") }
        var heapChanges = PageDelta(), stableChanges = PageDelta()
        if let file = captured.file {
            do {
                let imported = try PageAllocator.importSealed(file, deferringReleaseTo: deadResultFiles)
                heapChanges = try imported.resolve(captured.heapPages)
                stableChanges = try imported.resolve(captured.stablePages)
            } catch {
                throw .workerFailure("reading back the result file: \(error)")
            }
        }
        try session.commit(captured.update, heapChanges: heapChanges, stableChanges: stableChanges)
        if captured.file != nil { allocatorsMayBeUnused = true }  // without one, no page changed
        deadResultFiles.release(keepingAtMost: Self.maximumDeadResultFiles)
    }

    /// Sends a host call and waits for its answer (the host answers each in order). A broken
    /// protocol ends the worker; only the host's refusal reaches the guest.
    private func hostCall(_ request: [UInt8]) throws(ExecutionError) -> [UInt8] {
        nextCallID += 1
        let reply: HostCallMessage
        do {
            try channel.send(.hostCall, HostCallMessage(callID: nextCallID, succeeded: true, bytes: request))
            guard case .message(.hostCallReply, let body, let descriptors) = try channel.receive(
                      limit: 1 << 30, maximumDescriptors: 0, spin: .microseconds(spinMicroseconds), deadline: nil),
                  descriptors.isEmpty else { exit(ExitStatus.protocolBroken.rawValue) }
            reply = try HostCallMessage(decoding: body, limit: 1 << 30)
        } catch {
            exit(ExitStatus.protocolBroken.rawValue)
        }
        guard reply.callID == nextCallID else { exit(ExitStatus.protocolBroken.rawValue) }
        guard reply.succeeded else { throw .trapped("host call failed: \(String(decoding: reply.bytes, as: UTF8.self))") }
        return reply.bytes
    }
}
