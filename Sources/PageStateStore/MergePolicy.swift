/// When to merge a memory's overlays: keep a pyramid, each file at least as large as all newer
/// files together, so a memory with n stored pages has at most O(log n) files.
enum MergePolicy {
    /// The newest files to merge into one, given stored page counts oldest first; nil when the
    /// pyramid holds. Merging the suffix from the oldest violating file restores it.
    ///
    /// - Complexity: O(files).
    static func filesToMerge(sizes: [UInt64]) -> Range<Int>? {
        var newer: UInt64 = 0
        var violation: Int?
        for position in sizes.indices.reversed() {
            if sizes[position] < newer { violation = position }
            newer += sizes[position]
        }
        return violation.map { $0..<sizes.count }
    }
}
