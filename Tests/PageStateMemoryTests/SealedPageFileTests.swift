import PageState
import PropertyChecking
import SystemPackage
import Testing

/// Sealed page files carry a sandboxed update's pages to the host; `prepare` makes one ahead of time
/// so the writer only copies. Whatever the prepared capacity, the result must be the same pages.
@Suite struct SealedPageFileTests {
    /// Page `i`'s bytes: its number, then a fill that differs between neighbours.
    static func page(_ i: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: i &* 37 &+ 11), count: Page.size)
        withUnsafeBytes(of: UInt64(i).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        return bytes
    }

    @Test(.shrinking)
    func writtenPagesReadBackWhateverThePreparedCapacity() async throws {
        // prepared: -1 = no prepared file; otherwise the capacity the file was prepared for.
        await checkProperty(count: 40, input: zip(Gen.int(in: 1...2500), Gen.int(in: -1...3200))) { count, prepared in
            let pages = (0..<count).map(Self.page)
            let bytes = pages.flatMap { $0 }
            let file = prepared < 0 ? nil : try SealedPageFile.prepare(pages: prepared)
            let (descriptor, places) = try bytes.withUnsafeBytes { all in
                try SealedPageFile.write((0..<count).map { UnsafeRawBufferPointer(rebasing: all[($0 * Page.size)..<(($0 + 1) * Page.size)]) },
                                         into: file)
            }
            #expect(places.count == count)
            #expect(SealedPageFile.immutable.isSubset(of: try descriptor.seals()))
            // Chunk k holds 1024 << k slots after 1 << k tag pages: 1025 × (2^k − 1) pages in k chunks.
            let tagPages = Int(try descriptor.stat().size) / Page.size / 1025
            let imported = try PageAllocator.importSealed(descriptor)
            let delta = try imported.resolve(places.enumerated().map { PageLocation(index: PageIndex($0.offset), place: $0.element) })
            for (index, page) in delta where page.withUnsafeBytes({ Array($0) }) != pages[Int(index)] {
                Issue.record("page \(index) differs")
                return
            }
            // Only the written slots and their chunks' tag pages hold storage: a larger prepared
            // file had its unused tail punched out.
            #expect(try imported.allocatedFileBytes() <= UInt64((count + tagPages) * Page.size))
        }
    }

    @Test func preparedFilesHaveTheirSlotsAllocatedAhead() throws {
        let file = try SealedPageFile.prepare(pages: 1500)
        defer { try? file.close() }
        #expect(SealedPageFile.capacity(fileLength: UInt64(try file.stat().size)) == 3072)
        #expect(try file.stat().sizeAllocated >= 1500 * Int64(Page.size))
        #expect(try file.seals().isEmpty)
    }

    @Test func deinitializedImportsLeaveTheirFilesToTheirDeferredRelease() throws {
        let queue = DeferredRelease()
        var files: [(descriptor: FileDescriptor, inode: Inode)] = []
        for i in 0..<3 {
            let (descriptor, places) = try Self.page(i).withUnsafeBytes { try SealedPageFile.write([$0]) }
            files.append((descriptor, try descriptor.stat().inode))
            let imported = try PageAllocator.importSealed(descriptor, deferringReleaseTo: queue)
            #expect(try imported.page(at: places[0]).bytes == Self.page(i))  // maps the file's chunk
        }
        // The allocators are gone; their files stay open until released, oldest first.
        func isOpen(_ file: (descriptor: FileDescriptor, inode: Inode)) -> Bool {
            (try? file.descriptor.stat()).map { $0.inode == file.inode } ?? false
        }
        #expect(queue.count == 3 && files.allSatisfy(isOpen))
        queue.releaseOldest()
        #expect(queue.count == 2 && !isOpen(files[0]) && isOpen(files[1]) && isOpen(files[2]))
        queue.release(keepingAtMost: 1)
        #expect(queue.count == 1 && !isOpen(files[1]) && isOpen(files[2]))
        queue.release()
        #expect(queue.count == 0 && !isOpen(files[2]))
    }

    @Test func importsWithoutADeferredReleaseCloseTheirFileAtOnce() throws {
        let (descriptor, places) = try Self.page(7).withUnsafeBytes { try SealedPageFile.write([$0]) }
        let inode = try descriptor.stat().inode
        do {
            let imported = try PageAllocator.importSealed(descriptor)
            #expect(try imported.page(at: places[0]).bytes == Self.page(7))
        }
        #expect((try? descriptor.stat()).map { $0.inode == inode } != true)
    }
}
