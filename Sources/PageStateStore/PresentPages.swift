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
