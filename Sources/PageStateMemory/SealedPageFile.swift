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

    /// Writes `pages` (4,096 bytes each) into a new sealed memfd and returns it with each page's place.
    /// Never maps the file writable (a writable mapping would prevent `F_SEAL_WRITE`).
    ///
    /// - Complexity: O(n) bytes copied by the kernel, one `pwritev` per 1,024 pages or so.
    public static func write(_ pages: [UnsafeRawBufferPointer], name: String = "pagestate-result")
        throws(PageAllocatorError) -> (descriptor: FileDescriptor, places: [PageLocation.Place])
    {
        let count = UInt64(pages.count)
        var chunks = 0
        while AllocatorGeometry.firstSlot(chunk: chunks) < count { chunks += 1 }
        let length = AllocatorGeometry.fileLength(chunks: chunks)
        let descriptor: FileDescriptor
        do { descriptor = try FileDescriptor.memfd(name: name) } catch { throw .system(.createBackingFile, error) }
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
                if length > 0 {
                    // The file must end exactly at its last chunk; writing (not ftruncate) keeps the
                    // set of system calls a sandboxed writer needs small.
                    let end = UInt64(try descriptor.stat().size)
                    if end < length {
                        var zero: UInt8 = 0
                        try withUnsafeBytes(of: &zero) { (byte) throws(Errno) in
                            try PwriteFileWriter().write([WriteSegment(offset: length - 1, bytes: byte)], to: descriptor, sync: false)
                        }
                    }
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
}

extension PageAllocator {
    /// Takes a received sealed page file (`SealedPageFile`) as a new, read-only allocator whose pages
    /// are resolved with `page(at:)`/`resolve(_:)`, each validated (in range, aligned, a slot, tag).
    /// The allocator is never registered under an identity, so a hostile sender cannot make it alias
    /// another allocator of this process. Consumes `descriptor` (closed on failure too).
    ///
    /// - Throws: `mutableFile` when a seal is missing, `invalidLength` when the length is not a chunk boundary.
    /// - Complexity: O(1); chunks are mapped read-only on first use.
    public static func importSealed(_ descriptor: FileDescriptor) throws(PageAllocatorError) -> PageAllocator {
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
                             attachedLength: length, reclaimBatchPages: 1, reservedReleasedPages: 0)
    }
}
