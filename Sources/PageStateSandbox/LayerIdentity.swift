import PageStateMemory

extension PageMap {
    /// Whether `other` has the same layers (the same files and runs), so that one mapping can move
    /// between the two versions by remapping only changed delta pages.
    ///
    /// - Complexity: O(runs of the layers).
    func hasSameLayers(as other: PageMap) -> Bool {
        layers.count == other.layers.count && zip(layers, other.layers).allSatisfy { $0.fileRuns == $1.fileRuns }
    }
}
