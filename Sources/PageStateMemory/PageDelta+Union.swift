extension PageDelta {
    /// The pages of `self` and `newer`; where both have an index, `newer`'s page wins.
    ///
    /// - Complexity: O(m + n) in the worst case, but subtrees present on one side only, or shared
    ///   by both, are reused without being visited: merging a small delta into a large one costs
    ///   O(small × height × 64).
    public func union(_ newer: PageDelta) -> PageDelta {
        guard !isEmpty else { return newer }
        guard !newer.isEmpty else { return self }
        var older = self
        var newer = newer
        while older.rootShift < newer.rootShift { older.raise() }
        while newer.rootShift < older.rootShift { newer.raise() }
        var result = PageDelta()
        result.rootShift = older.rootShift
        result.root = Self.merge(older.root!, newer.root!, shift: result.rootShift)
        result.rootChanged()
        return result
    }

    /// Adds every page of `newer`, replacing pages at the same indices.
    ///
    /// - Complexity: as `union(_:)`.
    public mutating func formUnion(_ newer: PageDelta) {
        self = union(newer)
    }

    /// Merges two subtrees at the same level; returns `newer` itself when the result equals it.
    private static func merge(_ older: AnyObject, _ newer: AnyObject, shift: UInt64) -> AnyObject {
        if older === newer { return newer }
        if shift == 0 {
            let (olderLeaf, newerLeaf) = (unsafeDowncast(older, to: Leaf.self), unsafeDowncast(newer, to: Leaf.self))
            if olderLeaf.bitmap & ~newerLeaf.bitmap == 0 { return newer }
            return merge(olderLeaf, newerLeaf, count: { _ in 1 }, both: { _, newer in (newer, true) })
        }
        let childShift = shift - Trie.bitsPerLevel
        return merge(unsafeDowncast(older, to: Branch.self), unsafeDowncast(newer, to: Branch.self),
                     count: { Trie.count(of: $0, shift: childShift) },
                     both: { older, newer in
                         let merged = merge(older, newer, shift: childShift)
                         return (merged, merged === newer)
                     })
    }

    /// Merges two nodes digit by digit; `both` combines elements present in each and says whether
    /// the result is newer's element itself.
    private static func merge<Element>(
        _ older: TrieNode<Element>, _ newer: TrieNode<Element>,
        count: (Element) -> Int, both: (Element, Element) -> (Element, isNewer: Bool)
    ) -> TrieNode<Element> {
        let olderBits = older.bitmap
        let newerBits = newer.bitmap
        let bits = olderBits | newerBits
        let merged = TrieNode<Element>.make(capacity: bits.nonzeroBitCount)
        var sameAsNewer = bits == newerBits
        var total = 0
        merged.withUnsafeMutablePointerToElements { elements in
            var remaining = bits
            var position = 0
            while remaining != 0 {
                let digit = UInt64(remaining.trailingZeroBitCount)
                remaining &= remaining &- 1
                let bit: UInt64 = 1 << digit
                let element: Element
                switch (olderBits & bit != 0, newerBits & bit != 0) {
                case (true, true):
                    let (combined, isNewer) = both(older.element(for: digit), newer.element(for: digit))
                    element = combined
                    sameAsNewer = sameAsNewer && isNewer
                case (false, true): element = newer.element(for: digit)
                default: element = older.element(for: digit)
                }
                total += count(element)
                (elements + position).initialize(to: element)
                position += 1
            }
        }
        merged.withUnsafeMutablePointerToHeader {
            $0.pointee.bitmap = bits
            $0.pointee.count = total
        }
        return sameAsNewer ? newer : merged
    }
}
