import PageStateKernel
import SystemPackage

/// An immutable file of pages in the allocator's layout: written once into a new memfd, then sealed
/// (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) so that no process — not even the
/// one that wrote it — can change, shrink or grow it again. A sandboxed worker hands its execution's
/// pages to the host this way; the host imports the file (`PageAllocator.importSealed`) and adopts
/// the pages without copying, knowing they can never change under it.
///
/// Layout: slot `i` holds `pages[i]` with validation tag 1; the file is exactly as long as the chunks
/// the slots need (`formats.md`, allocator file), so it is also a valid allocator description.
public enum SealedPageFile {
    /// The seals that make a page file immutable.
    public static let immutable: FileSeals = [.write, .shrink, .grow, .seal]

    /// Makes a memfd ready to receive `pages` pages: its length is the chunks they need and the
    /// storage of their slots and tags is allocated now (zero-filled), so that `write(_:into:)` only
    /// copies. Preparing is the expensive half of a result (the kernel allocates and clears every
    /// page); a sandbox pool does it in the background, before the execution that needs the file.
    ///
    /// - Complexity: O(pages) pages allocated by the kernel.
    public static func prepare(pages: Int, name: String = "pagestate-result") throws(PageAllocatorError) -> FileDescriptor {
        let count = UInt64(max(pages, 1))
        let chunks = chunkCount(slots: count)
        let descriptor: FileDescriptor
        do { descriptor = try FileDescriptor.memfd(name: name) } catch { throw .system(.createBackingFile, error) }
        do throws(Errno) {
            for k in 0..<chunks {
                let slots = min(count, AllocatorGeometry.firstSlot(chunk: k + 1)) - AllocatorGeometry.firstSlot(chunk: k)
                let used = (AllocatorGeometry.tagPageCount(chunk: k) + slots) * UInt64(Page.size)
                try descriptor.allocateSpace(offset: AllocatorGeometry.fileLength(chunks: k), length: used)
            }
            do { try descriptor.resize(to: Int64(AllocatorGeometry.fileLength(chunks: chunks))) } catch { throw error as? Errno ?? .ioError }
        } catch {
            try? descriptor.close()
            throw .system(.createBackingFile, error)
        }
        return descriptor
    }

    /// Slots a file of `length` bytes made by `prepare` or `write` has room for (0 when the length is not a chunk boundary).
    public static func capacity(fileLength length: UInt64) -> Int {
        AllocatorGeometry.chunkCount(fileLength: length).map { Int(AllocatorGeometry.firstSlot(chunk: $0)) } ?? 0
    }

    /// Writes `pages` (4,096 bytes each) into a new sealed memfd, or into `prepared` (a file from
    /// `prepare`, of any capacity: a smaller one grows, a larger one has its unused tail punched out),
    /// and returns it with each page's place. Never maps the file writable (a writable mapping would
    /// prevent `F_SEAL_WRITE`). Consumes `prepared`.
    ///
    /// - Complexity: O(n) bytes copied by the kernel, one `pwritev` per 1,024 pages or so.
    public static func write(_ pages: [UnsafeRawBufferPointer], into prepared: FileDescriptor? = nil,
                             name: String = "pagestate-result")
        throws(PageAllocatorError) -> (descriptor: FileDescriptor, places: [PageLocation.Place])
    {
        let count = UInt64(pages.count)
        let chunks = chunkCount(slots: count)
        let length = AllocatorGeometry.fileLength(chunks: chunks)
        let descriptor: FileDescriptor
        if let prepared { descriptor = prepared } else {
            do { descriptor = try FileDescriptor.memfd(name: name) } catch { throw .system(.createBackingFile, error) }
        }
        var places: [PageLocation.Place] = []
        places.reserveCapacity(pages.count)
        let tags = [UInt32](repeating: 1, count: Int(count))
        let written = tags.withUnsafeBytes { tagBytes in Result { () throws(Errno) in
                var segments: [WriteSegment] = []
                segments.reserveCapacity(pages.count + chunks + 1)
                for k in 0..<chunks {
                    let first = Int(AllocatorGeometry.firstSlot(chunk: k))
                    let slots = min(Int(count), first + Int(AllocatorGeometry.slotCount(chunk: k))) - first
                    segments.append(WriteSegment(offset: AllocatorGeometry.fileLength(chunks: k),
                                                 bytes: UnsafeRawBufferPointer(rebasing: tagBytes[(first * 4)..<((first + slots) * 4)])))
                }
                for (slot, page) in pages.enumerated() {
                    precondition(page.count == Page.size, "a page is \(Page.size) bytes")
                    let offset = AllocatorGeometry.fileOffset(ofSlot: UInt64(slot))
                    segments.append(WriteSegment(offset: offset, bytes: page))
                    places.append(PageLocation.Place(offset: offset, tag: 1))
                }
                try PwriteFileWriter().write(segments.sorted { $0.offset < $1.offset }, to: descriptor, sync: false)
                let end = UInt64(try descriptor.stat().size)
                if end < length {
                    // The file must end exactly at its last chunk; writing (not ftruncate) keeps the
                    // set of system calls a sandboxed writer needs small.
                    var zero: UInt8 = 0
                    try withUnsafeBytes(of: &zero) { (byte) throws(Errno) in
                        try PwriteFileWriter().write([WriteSegment(offset: length - 1, bytes: byte)], to: descriptor, sync: false)
                    }
                }
                let unused = AllocatorGeometry.fileOffset(ofSlot: count)
                if prepared != nil, unused < max(end, length) {
                    // Slots prepared but not written (and later chunks' tag pages): free their storage.
                    try descriptor.punchHole(offset: unused, length: max(end, length) - unused)
                }
                try descriptor.addSeals(immutable)
            }
        }
        do throws(Errno) { try written.get() } catch {
            try? descriptor.close()
            throw .system(.writeSealedFile, error)
        }
        return (descriptor, places)
    }

    /// Chunks needed for `slots` slots.
    private static func chunkCount(slots: UInt64) -> Int {
        var chunks = 0
        while AllocatorGeometry.firstSlot(chunk: chunks) < slots { chunks += 1 }
        return chunks
    }
}

extension PageAllocator {
    /// Takes a received sealed page file (`SealedPageFile`) as a new, read-only allocator whose pages
    /// are resolved with `page(at:)`/`resolve(_:)`, each validated (in range, aligned, a slot, tag).
    /// The allocator is never registered under an identity, so a hostile sender cannot make it alias
    /// another allocator of this process. Consumes `descriptor` (closed on failure too). Once the
    /// allocator is deinitialized, its mappings and descriptor go to `deferredRelease` (if given)
    /// instead of being unmapped and closed at once.
    ///
    /// - Throws: `mutableFile` when a seal is missing, `invalidLength` when the length is not a chunk boundary.
    /// - Complexity: O(1); chunks are mapped read-only on first use.
    public static func importSealed(_ descriptor: FileDescriptor,
                                    deferringReleaseTo deferredRelease: DeferredRelease? = nil) throws(PageAllocatorError) -> PageAllocator {
        let length: UInt64
        do {
            let seals = try descriptor.seals()
            let missing = SealedPageFile.immutable.subtracting(seals).subtracting(.seal)
            guard missing.isEmpty else {
                try? descriptor.close()
                throw PageAllocatorError.mutableFile(missing: missing)
            }
            length = UInt64(try descriptor.stat().size)
        } catch let error as PageAllocatorError {
            throw error
        } catch {
            try? descriptor.close()
            throw .system(.inspectBackingFile, error as? Errno ?? .ioError)
        }
        guard AllocatorGeometry.chunkCount(fileLength: length) != nil else {
            try? descriptor.close()
            throw .invalidLength(claimed: length, actual: length)
        }
        return PageAllocator(descriptor: descriptor, identity: UInt64.random(in: 1...UInt64.max), isOwner: false,
                             attachedLength: length, reclaimBatchPages: 1, reservedReleasedPages: 0,
                             deferredRelease: deferredRelease)
    }
}
