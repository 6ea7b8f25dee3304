import PageStateKernel
import Synchronization
import SystemPackage

/// A file of 4 KiB pages — a memfd by default — that can be shared with other processes by passing
/// its descriptor.
///
/// The owner allocates immutable, reference-counted `Page`s; another process attaches the same file
/// from an `AllocatorDescription` and resolves `PageLocation`s to the same bytes without copying.
/// Released slots are reused, most recent first. The newest `reservedReleasedPages` of them stay
/// resident for that; once `reclaimBatchPages` more accumulate, the oldest batch is punched out of
/// the file (`fallocate(PUNCH_HOLE)`), so the file's allocated blocks drop.
///
/// Thread safety: every operation may be called from any thread. Slot bookkeeping is behind one
/// mutex; page bytes are read without locking (they never change while a `Page` refers to them).
///
/// Invariants: chunk `k` is mapped (and its base stored in `chunkBases[k]`) before any slot in it is
/// handed out or resolved, and stays mapped until the allocator is deinitialized, which cannot happen
/// while a `Page` exists. A slot's tag is nonzero exactly while some `Page` owns it (owner side).
public final class PageAllocator: @unchecked Sendable {
    /// How an allocator stores its pages.
    public struct Options: Sendable {
        /// The backing file.
        public enum Backing: Sendable, Hashable {
            /// An anonymous memfd, sealed against shrinking.
            case memfd(name: String)
            /// An unnamed file (`O_TMPFILE`) in a directory, for deltas larger than memory.
            case unnamedFile(directory: FilePath)
        }
        public var backing: Backing
        /// Released pages punched out together, beyond the reserve.
        public var reclaimBatchPages: Int
        /// Most recently released pages kept resident for reuse, never punched by the batch: a
        /// workload that releases and reallocates pages (every commit replaces pages) then reuses
        /// resident memory instead of faulting punched pages back in.
        public var reservedReleasedPages: Int

        public init(backing: Backing = .memfd(name: "pagestate"), reclaimBatchPages: Int = 4096,
                    reservedReleasedPages: Int = 4096) {
            self.backing = backing
            self.reclaimBatchPages = max(1, reclaimBatchPages)
            self.reservedReleasedPages = max(0, reservedReleasedPages)
        }
    }

    /// A process-unique name for the file, stable across processes that share it.
    public let identity: UInt64
    /// Whether this process created the file (and so may allocate and reclaim).
    public let isOwner: Bool
    /// The backing file; owned by the allocator (do not close it).
    public let descriptor: FileDescriptor
    private let reclaimBatchPages: Int
    private let reservedReleasedPages: Int
    private let chunkBases: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let state: Mutex<SlotState>
    /// Where `deinit` leaves the mappings and descriptor instead of unmapping and closing them.
    private let deferredRelease: DeferredRelease?

    /// Creates an allocator with its own, empty backing file.
    ///
    /// - Throws: `PageAllocatorError.system` naming the failing step (EMFILE, ENOMEM, EACCES, ...).
    public convenience init(options: Options = Options()) throws(PageAllocatorError) {
        let descriptor: FileDescriptor
        do {
            switch options.backing {
            case .memfd(let name): descriptor = try FileDescriptor.memfd(name: name)
            case .unnamedFile(let directory): descriptor = try FileDescriptor.unnamedFile(in: directory)
            }
        } catch { throw .system(.createBackingFile, error) }
        if case .memfd = options.backing {
            do { try descriptor.addSeals(.shrink) } catch {
                try? descriptor.close()
                throw .system(.sealBackingFile, error)
            }
        }
        self.init(descriptor: descriptor, identity: UInt64.random(in: 1...UInt64.max), isOwner: true,
                  attachedLength: 0, reclaimBatchPages: options.reclaimBatchPages,
                  reservedReleasedPages: options.reservedReleasedPages)
        AllocatorRegistry.register(self)
    }

    init(descriptor: FileDescriptor, identity: UInt64, isOwner: Bool, attachedLength: UInt64,
         reclaimBatchPages: Int, reservedReleasedPages: Int, deferredRelease: DeferredRelease? = nil) {
        self.descriptor = descriptor
        self.deferredRelease = deferredRelease
        self.identity = identity
        self.isOwner = isOwner
        self.reclaimBatchPages = reclaimBatchPages
        self.reservedReleasedPages = reservedReleasedPages
        chunkBases = .allocate(capacity: AllocatorGeometry.maximumChunks)
        chunkBases.initialize(repeating: nil, count: AllocatorGeometry.maximumChunks)
        state = Mutex(SlotState(attachedLength: attachedLength))
    }

    deinit {
        let mappings = (0..<AllocatorGeometry.maximumChunks).compactMap { k in
            chunkBases[k].map { (address: UInt(bitPattern: $0), length: AllocatorGeometry.chunkBytes(chunk: k)) }
        }
        chunkBases.deallocate()
        AllocatorRegistry.unregister(identity: identity)
        if let deferredRelease {
            deferredRelease.append(mappings: mappings, descriptor: descriptor)
        } else {
            DeferredRelease.release(mappings: mappings, descriptor: descriptor)
        }
    }

    // MARK: Allocation (owner only)

    /// Allocates a page and lets `initialize` write all of its 4,096 bytes before it is published.
    /// The buffer holds unspecified bytes on entry (a reused slot keeps old contents).
    ///
    /// - Complexity: O(1) amortized; growing the file maps one more chunk.
    public func allocate(
        initializingWith initialize: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> Page {
        let (slot, tag) = try takeSlot()
        do {
            try initialize(UnsafeMutableRawBufferPointer(start: address(ofSlot: slot), count: Page.size))
        } catch {
            release(slot: slot)
            throw error
        }
        return Page(allocator: self, slot: slot, tag: tag)
    }

    /// Allocates a page holding `bytes` (at most 4,096) followed by zeros.
    ///
    /// - Complexity: O(1) amortized plus one 4 KiB copy.
    public func allocate(copying bytes: UnsafeRawBufferPointer) throws(PageAllocatorError) -> Page {
        precondition(bytes.count <= Page.size, "a page holds at most \(Page.size) bytes")
        let (slot, tag) = try takeSlot()
        let target = UnsafeMutableRawBufferPointer(start: address(ofSlot: slot), count: Page.size)
        target.copyMemory(from: bytes)
        if bytes.count < Page.size { target[bytes.count...].initializeMemory(as: UInt8.self, repeating: 0) }
        return Page(allocator: self, slot: slot, tag: tag)
    }

    /// Allocates a page holding `bytes` (at most 4,096) followed by zeros.
    public func allocate(copying bytes: [UInt8]) throws(PageAllocatorError) -> Page {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(PageAllocatorError) in try allocate(copying: buffer) }
        }
        return try result.get()
    }

    private func takeSlot() throws(PageAllocatorError) -> (UInt32, UInt32) {
        guard isOwner else { throw .notOwner }
        return try state.withLock { state throws(PageAllocatorError) in
            let slot: UInt32
            if let reused = state.released.popLast() ?? state.reclaimed.popLast() {
                slot = reused
            } else {
                guard state.nextSlot <= UInt64(UInt32.max) else { throw .exhausted }
                if state.nextSlot == AllocatorGeometry.firstSlot(chunk: state.chunkCount) {
                    try grow(&state)
                }
                slot = UInt32(state.nextSlot)
                state.nextSlot += 1
                state.references.append(0)
            }
            let tag = state.nextTag()
            tagPointer(ofSlot: slot).pointee = tag
            state.references[Int(slot)] = 1
            state.livePages += 1
            return (slot, tag)
        }
    }

    /// Extends the file by one chunk and maps it. Called with the lock held.
    private func grow(_ state: inout SlotState) throws(PageAllocatorError) {
        let k = state.chunkCount
        guard k < AllocatorGeometry.maximumChunks else { throw .exhausted }
        do { try descriptor.resize(to: Int64(AllocatorGeometry.fileLength(chunks: k + 1))) } catch {
            throw .system(.growBackingFile, error as? Errno ?? .ioError)
        }
        try map(chunk: k, protection: [.read, .write])
        state.chunkCount = k + 1
    }

    private func map(chunk k: Int, protection: MemoryProtection) throws(PageAllocatorError) {
        do {
            chunkBases[k] = try mapMemory(length: AllocatorGeometry.chunkBytes(chunk: k), protection: protection,
                                          flags: .shared, descriptor: descriptor,
                                          offset: AllocatorGeometry.fileLength(chunks: k))
        } catch { throw .system(.mapChunk, error) }
    }

    /// Drops one reference to `slot`; the last one releases it for reuse.
    func release(slot: UInt32) {
        let batch: [UInt32]? = state.withLock { state in
            state.references[Int(slot)] -= 1
            guard state.references[Int(slot)] == 0 else { return nil }
            tagPointer(ofSlot: slot).pointee = 0
            state.livePages -= 1
            state.released.append(slot)
            guard state.released.count >= reservedReleasedPages + reclaimBatchPages else { return nil }
            defer { state.released.removeFirst(reclaimBatchPages) }
            return Array(state.released.prefix(reclaimBatchPages))  // the oldest: least likely still cached
        }
        if let batch { reclaim(batch) }
    }

    /// Punches out the storage of every released, not yet reclaimed slot now, the reserve included.
    public func reclaimReleasedPages() {
        let batch = state.withLock { state in
            defer { state.released = [] }
            return state.released
        }
        reclaim(batch)
    }

    private func reclaim(_ slots: [UInt32]) {
        var failure: Errno?
        for run in FileRuns(slots: slots) {
            do { try descriptor.punchHole(offset: run.offset, length: run.length) } catch { failure = error }
        }
        state.withLock { state in
            state.reclaimed.append(contentsOf: slots)
            state.reclaimedTotal += slots.count
            if let failure { state.lastReclaimFailure = failure }
        }
    }

    // MARK: Addresses

    func address(ofSlot slot: UInt32) -> UnsafeMutableRawPointer {
        let k = AllocatorGeometry.chunk(ofSlot: UInt64(slot))
        return chunkBases[k].unsafelyUnwrapped + AllocatorGeometry.offsetInChunk(slot: UInt64(slot), chunk: k)
    }

    private func tagPointer(ofSlot slot: UInt32) -> UnsafeMutablePointer<UInt32> {
        let k = AllocatorGeometry.chunk(ofSlot: UInt64(slot))
        let raw = chunkBases[k].unsafelyUnwrapped + AllocatorGeometry.tagOffsetInChunk(slot: UInt64(slot), chunk: k)
        return raw.assumingMemoryBound(to: UInt32.self)
    }

    // MARK: Sharing

    /// Describes this allocator for another process. The descriptor stays owned by the allocator:
    /// send it (SCM_RIGHTS duplicates it) but do not close it.
    public func describe() -> AllocatorDescription {
        let length = state.withLock { state in
            isOwner ? AllocatorGeometry.fileLength(chunks: state.chunkCount) : state.attachedLength
        }
        return AllocatorDescription(descriptor: descriptor, identity: identity, length: length)
    }

    /// Resolves a received page location to a `Page` of this allocator, validating it first.
    ///
    /// - Throws: `offsetOutOfRange`, `misalignedOffset`, `metadataOffset`, `reclaimedPage`, `stalePage`.
    /// - Complexity: O(1); the first page of a not yet mapped chunk maps it (attached side).
    public func page(at place: PageLocation.Place) throws(PageAllocatorError) -> Page {
        try state.withLock { state throws(PageAllocatorError) in
            let length = isOwner ? AllocatorGeometry.fileLength(chunks: state.chunkCount) : state.attachedLength
            guard place.offset < length else { throw .offsetOutOfRange(offset: place.offset, length: length) }
            let slot: UInt64
            switch AllocatorGeometry.target(ofFileOffset: place.offset) {
            case .misaligned: throw .misalignedOffset(place.offset)
            case .tagPage: throw .metadataOffset(place.offset)
            case .slot(let s): slot = s
            }
            let k = AllocatorGeometry.chunk(ofSlot: slot)
            if chunkBases[k] == nil { try map(chunk: k, protection: .read) }
            let actual = tagPointer(ofSlot: UInt32(slot)).pointee
            guard actual != 0 else { throw .reclaimedPage(offset: place.offset) }
            guard actual == place.tag else {
                throw .stalePage(offset: place.offset, expectedTag: place.tag, actualTag: actual)
            }
            if isOwner { state.references[Int(slot)] += 1 }
            return Page(allocator: self, slot: UInt32(slot), tag: actual)
        }
    }

    /// Resolves a list of received page locations into a delta; a repeated index keeps its last page.
    ///
    /// - Complexity: O(n) for n locations in ascending index order, O(n log n) otherwise.
    public func resolve(_ locations: [PageLocation]) throws(PageAllocatorError) -> PageDelta {
        var pages: [(index: PageIndex, page: Page)] = []
        pages.reserveCapacity(locations.count)
        for location in locations { pages.append((location.index, try page(at: location.place))) }
        return PageDelta(pages)
    }

    /// Attaches the allocator a description names, in this process. Attaching an identity that is
    /// already present (attached or owned here) returns that same allocator and closes the received
    /// descriptor; a larger described length makes more of the file resolvable.
    ///
    /// The description's descriptor is consumed: the allocator closes it, also when attaching fails.
    public static func attach(_ description: AllocatorDescription) throws(PageAllocatorError) -> PageAllocator {
        try AllocatorRegistry.attach(description)
    }

    /// Validates a received description's file and length before anything is mapped from it.
    static func validate(_ description: AllocatorDescription) throws(PageAllocatorError) {
        let actual: UInt64
        do { actual = UInt64(try description.descriptor.stat().size) } catch {
            throw .system(.inspectBackingFile, error)
        }
        guard AllocatorGeometry.chunkCount(fileLength: description.length) != nil, description.length <= actual else {
            throw .invalidLength(claimed: description.length, actual: actual)
        }
        do {
            guard try description.descriptor.seals().contains(.shrink) else { throw PageAllocatorError.unsealedMemfd }
        } catch let error as PageAllocatorError {
            throw error
        } catch {
            // EINVAL: a regular file, which cannot carry seals; its length was checked above.
            guard (error as? Errno) == .invalidArgument else { throw .system(.inspectBackingFile, error as? Errno ?? .ioError) }
        }
    }

    func extendAttachedLength(to length: UInt64) {
        state.withLock { state in state.attachedLength = max(state.attachedLength, length) }
    }

    // MARK: Observation

    /// Counts that show what the allocator holds and what it has reclaimed.
    public struct Statistics: Sendable, Hashable {
        /// Slots referenced by at least one `Page`.
        public var livePages: Int
        /// Slots released and awaiting the next reclaim batch (reused first).
        public var releasedPages: Int
        /// Slots whose storage was punched out and which await reuse.
        public var reclaimedPages: Int
        /// Slots ever used (the high-water mark).
        public var slotsUsed: Int
        /// Length of the backing file in bytes.
        public var fileLength: UInt64
        /// Bytes of allocator bookkeeping: tags, reference counts and free lists.
        public var metadataBytes: Int
        /// The last error punching holes reported, if any (the pages were still recycled).
        public var lastReclaimFailure: Errno?
    }

    /// A snapshot of the allocator's counts.
    ///
    /// - Complexity: O(1).
    public var statistics: Statistics {
        state.withLock { state in
            Statistics(
                livePages: state.livePages, releasedPages: state.released.count,
                reclaimedPages: state.reclaimed.count, slotsUsed: Int(state.nextSlot),
                fileLength: isOwner ? AllocatorGeometry.fileLength(chunks: state.chunkCount) : state.attachedLength,
                metadataBytes: Int(AllocatorGeometry.tagBytes(chunks: state.chunkCount))
                    + 4 * (state.references.capacity + state.released.capacity + state.reclaimed.capacity),
                lastReclaimFailure: state.lastReclaimFailure)
        }
    }

    /// Bytes of storage the backing file occupies (`st_blocks` × 512).
    public func allocatedFileBytes() throws(PageAllocatorError) -> UInt64 {
        do { return UInt64(try descriptor.stat().sizeAllocated) } catch { throw .system(.inspectBackingFile, error) }
    }
}

/// Slot bookkeeping of one allocator, guarded by its mutex.
struct SlotState {
    var attachedLength: UInt64
    var chunkCount = 0
    var nextSlot: UInt64 = 0
    /// Reference count per slot ever used (owner only).
    var references: [UInt32] = []
    /// Released slots awaiting reclaim; reused first because their pages are still resident.
    var released: [UInt32] = []
    /// Slots whose storage was punched out.
    var reclaimed: [UInt32] = []
    var livePages = 0
    var reclaimedTotal = 0
    var lastReclaimFailure: Errno?
    private var tagCounter: UInt32 = 0

    init(attachedLength: UInt64) { self.attachedLength = attachedLength }

    /// The next nonzero validation tag.
    mutating func nextTag() -> UInt32 {
        tagCounter &+= 1
        if tagCounter == 0 { tagCounter = 1 }
        return tagCounter
    }
}
