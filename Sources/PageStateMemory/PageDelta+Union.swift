extension PageDelta {
    /// The pages of `self` and `newer`; where both have an index, `newer`'s page wins.
    ///
    /// - Complexity: O(m + n) in the worst case, but subtrees present on one side only, or shared
    ///   by both, are reused without being visited: merging a small delta into a large one costs
    ///   O(small × height × 64).
    public func union(_ newer: PageDelta) -> PageDelta {
        guard var older = root else { return newer }
        guard var newerRoot = newer.root else { return self }
        var olderCopy = self
        var newerCopy = newer
        while olderCopy.rootShift < newerCopy.rootShift { olderCopy.raise(&older) }
        while newerCopy.rootShift < olderCopy.rootShift { newerCopy.raise(&newerRoot) }
        var result = PageDelta()
        result.rootShift = olderCopy.rootShift
        result.root = Self.merge(older, newerRoot, shift: result.rootShift)
        return result
    }

    /// Adds every page of `newer`, replacing pages at the same indices.
    ///
    /// - Complexity: as `union(_:)`.
    public mutating func formUnion(_ newer: PageDelta) {
        self = union(newer)
    }

    /// Merges two subtrees at the same level; returns `newer` itself when the result equals it.
    private static func merge(_ older: TrieNode, _ newer: TrieNode, shift: UInt64) -> TrieNode {
        if older === newer { return newer }
        let olderBits = older.bitmap
        let newerBits = newer.bitmap
        if shift == 0 && olderBits & ~newerBits == 0 { return newer }
        let bits = olderBits | newerBits
        let merged = TrieNode.make(capacity: bits.nonzeroBitCount)
        var sameAsNewer = bits == newerBits
        var count = 0
        merged.withUnsafeMutablePointerToElements { elements in
            var remaining = bits
            var position = 0
            while remaining != 0 {
                let digit = UInt64(remaining.trailingZeroBitCount)
                remaining &= remaining &- 1
                let bit: UInt64 = 1 << digit
                let element: AnyObject
                if newerBits & bit != 0 {
                    let fromNewer = newer.element(at: TrieNode.position(of: digit, in: newerBits))
                    if shift > 0 && olderBits & bit != 0 {
                        let olderChild = unsafeDowncast(older.element(at: TrieNode.position(of: digit, in: olderBits)),
                                                        to: TrieNode.self)
                        let child = merge(olderChild, unsafeDowncast(fromNewer, to: TrieNode.self),
                                          shift: shift - TrieNode.bitsPerLevel)
                        sameAsNewer = sameAsNewer && child === fromNewer
                        element = child
                    } else {
                        element = fromNewer
                    }
                } else {
                    element = older.element(at: TrieNode.position(of: digit, in: olderBits))
                }
                count += shift == 0 ? 1 : unsafeDowncast(element, to: TrieNode.self).count
                (elements + position).initialize(to: element)
                position += 1
            }
        }
        merged.header.bitmap = bits
        merged.header.count = count
        return sameAsNewer ? newer : merged
    }
}
