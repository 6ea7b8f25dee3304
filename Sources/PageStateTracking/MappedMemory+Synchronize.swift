import PageStateMemory

extension MappedMemory {
    /// Brings the mapping from the version it shows to `newer`, a later version of the same memory
    /// (same layers; a new layer stack needs a new mapping), touching only the pages whose page
    /// differs between the two deltas: those `newer` holds are remapped zero-copy from their
    /// allocators (coalesced into runs), those it no longer holds get the bytes `newer` shows.
    /// Writes made through the mapping since it showed its version must have been committed or
    /// rolled back. Returns the pages replaced (which lost any tracker registration).
    ///
    /// - Complexity: O(pages changed × trie height) to find them, one `mmap` per run of them.
    public func synchronize(to newer: PageMap) throws(MappingError) -> DirtyPages {
        precondition(newer.layers.count == shown.layers.count, "synchronize versions that share their layers")
        try grow(toPages: newer.sizeInPages)
        let changed = newer.delta.changedIndices(comparedTo: shown.delta)
        var replaced = DirtyPages()
        var held: [(index: PageIndex, page: Page)] = []
        for index in changed {
            replaced.append(index..<(index + 1))
            if let page = newer.delta[index] {
                held.append((index, page))
            } else {
                newer.withPage(index) { pageAddress(index).copyMemory(from: $0.baseAddress!, byteCount: Page.size) }
            }
        }
        try mapRuns(PageDelta(held).fileRuns)
        shown = newer
        return replaced
    }
}
