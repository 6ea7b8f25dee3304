import CPageState
import Dispatch
import Glibc
import PageStateMemory

extension MappedMemory {
    /// Copies written pages out of the mapping into new pages of the shown version's allocator.
    /// Pages whose bytes equal the shown version's are dropped: a write that changed nothing changes
    /// no state (so the delta, and what a checkpoint writes, holds only real changes).
    ///
    /// - Complexity: O(dirty pages): one 4 KiB compare and at most one 4 KiB copy each.
    public func capture(_ dirty: DirtyPages) throws -> PageDelta {
        let changed = changedPages(dirty)
        var pages: [(index: PageIndex, page: Page)] = []
        pages.reserveCapacity(changed.count)
        for index in changed { pages.append((index, try shown.allocator.allocate(copying: bytes(ofPage: index)))) }
        return PageDelta(pages)
    }

    /// The written pages whose bytes differ from the shown version's, ascending.
    ///
    /// - Complexity: O(dirty pages): one 4 KiB compare each.
    public func changedPages(_ dirty: DirtyPages) -> [PageIndex] {
        var changed: [PageIndex] = []
        changed.reserveCapacity(dirty.count)
        for run in dirty.runs {
            for index in run {
                let current = bytes(ofPage: index)
                if shown.withPage(index, { memcmp($0.baseAddress!, current.baseAddress!, Page.size) != 0 }) { changed.append(index) }
            }
        }
        return changed
    }

    /// The mapping's bytes of page `index` (below the mapped size); valid while the mapping lives.
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pageAddress(index), count: Page.size)
    }

    /// Makes pages captured from this mapping part of the version it shows.
    ///
    /// - Complexity: as `PageMap.apply(_:)`.
    public func adopt(_ delta: PageDelta) {
        shown.apply(delta)
    }

    /// Copies the shown version's bytes back over the dirty pages, undoing an execution's writes.
    /// The copies use non-temporal stores (no read of the page being overwritten, no cache
    /// pollution), and large sets are copied by several threads: one core cannot saturate memory.
    ///
    /// At most `threads` threads copy; with 1 no thread is started.
    ///
    /// - Complexity: O(dirty pages): one 4 KiB copy each, no system calls.
    public func restore(_ dirty: DirtyPages, threads: Int = copyThreads) {
        let indices = dirty.indices
        let workers = indices.count >= Self.parallelCopyThreshold ? max(1, min(threads, indices.count)) : 1
        let version = shown
        let copy = { @Sendable (worker: Int) in
            let chunk = (indices.count + workers - 1) / workers
            for index in indices[min(worker * chunk, indices.count)..<min((worker + 1) * chunk, indices.count)] {
                version.withPage(index) { ps_copy_page_streaming(self.pageAddress(index), $0.baseAddress!) }
            }
            ps_store_fence()
        }
        if workers == 1 { copy(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: copy) }
    }

    /// Dirty sets at least this large are restored by several threads.
    static var parallelCopyThreshold: Int { 256 }
    /// Threads that restore a large dirty set: the processors this process may run on, at most 8.
    public static let copyThreads = min(8, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

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
