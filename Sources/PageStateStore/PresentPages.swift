import PageStateMemory

extension PageMap {
    /// Every page index held in the delta or a layer, ascending: what a whole rewrite or a full
    /// hash must visit (other pages read as zeros).
    ///
    /// - Complexity: O(p log p) for p present pages.
    var presentIndices: [PageIndex] {
        var indices = Set(delta.indices)
        for layer in layers {
            for range in layer.pageRanges { indices.formUnion(range) }
        }
        return indices.sorted()
    }
}

extension PageMap {
    /// Which of the 16 pages from `first` are held in the delta or a layer: bit i for page first + i.
    ///
    /// - Complexity: one range descent in the delta, O(log₆₄ n), plus a lookup per layer for each page
    ///   the delta does not hold.
    func presentSlots(from first: PageIndex) -> UInt16 {
        var mask: UInt16 = 0
        for (index, _) in delta.pages(in: first..<(first + 16)) { mask |= 1 << (index - first) }
        guard !layers.isEmpty else { return mask }
        for slot in 0..<16 where mask & (1 << slot) == 0 && layers.contains(where: { $0.bytes(ofPage: first + UInt64(slot)) != nil }) {
            mask |= 1 << slot
        }
        return mask
    }
}

extension Array where Element: Equatable {
    /// Removes adjacent repeats (all repeats, when sorted).
    ///
    /// - Complexity: O(n).
    mutating func removeDuplicates() {
        var kept = 0
        for element in self where kept == 0 || self[kept - 1] != element {
            self[kept] = element
            kept += 1
        }
        removeLast(count - kept)
    }
}
