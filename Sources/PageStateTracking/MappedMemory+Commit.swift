import Glibc
import PageStateMemory

extension MappedMemory {
    /// Copies written pages out of the mapping into new pages of the shown version's allocator.
    /// Pages whose bytes equal the shown version's are dropped: a write that changed nothing changes
    /// no state (so the delta, and what a checkpoint writes, holds only real changes).
    ///
    /// - Complexity: O(dirty pages): one 4 KiB compare and at most one 4 KiB copy each.
    public func capture(_ dirty: DirtyPages) throws -> PageDelta {
        var pages: [(index: PageIndex, page: Page)] = []
        pages.reserveCapacity(dirty.count)
        for run in dirty.runs {
            for index in run {
                let current = UnsafeRawBufferPointer(start: pageAddress(index), count: Page.size)
                let unchanged = shown.withPage(index) { memcmp($0.baseAddress!, current.baseAddress!, Page.size) == 0 }
                if !unchanged { pages.append((index, try shown.allocator.allocate(copying: current))) }
            }
        }
        return PageDelta(pages)
    }

    /// Makes pages captured from this mapping part of the version it shows.
    ///
    /// - Complexity: as `PageMap.apply(_:)`.
    public func adopt(_ delta: PageDelta) {
        shown.apply(delta)
    }

    /// Copies the shown version's bytes back over the dirty pages, undoing an execution's writes.
    ///
    /// - Complexity: O(dirty pages): one 4 KiB copy each, no system calls.
    public func restore(_ dirty: DirtyPages) {
        for run in dirty.runs {
            for index in run {
                shown.withPage(index) { pageAddress(index).copyMemory(from: $0.baseAddress!, byteCount: Page.size) }
            }
        }
    }

    /// Makes pages up to `pages` accessible (new ones read as zeros), within the reservation.
    ///
    /// - Complexity: one `mmap`.
    public func grow(toPages pages: UInt64) throws(MappingError) {
        guard pages > sizeInPages else { return }
        guard pages <= capacityInPages else { throw .capacityExceeded(requestedPages: pages, capacityPages: capacityInPages) }
        try mapZeros(sizeInPages..<pages)
        sizeInPages = pages
        shown.grow(toPages: pages)
    }
}
