extension PageDelta {
    /// The indices whose page differs between `self` and `other`: present in only one of them, or
    /// present in both as different pages. Subtrees the two share are skipped without being visited,
    /// so comparing a version with a later one costs O(pages changed × height), not O(pages).
    ///
    /// - Complexity: O((d + s) × 64) for d differing pages and s subtrees visited; ascending output.
    public func changedIndices(comparedTo other: PageDelta) -> [PageIndex] {
        var a = self
        var b = other
        guard !a.isEmpty || !b.isEmpty else { return [] }
        if a.isEmpty { return b.indices }
        if b.isEmpty { return a.indices }
        while a.rootShift < b.rootShift { a.raise() }
        while b.rootShift < a.rootShift { b.raise() }
        var changed: [PageIndex] = []
        Self.difference(a.root, b.root, shift: a.rootShift, prefix: 0, into: &changed)
        return changed
    }

    private static func difference(_ a: AnyObject?, _ b: AnyObject?, shift: UInt64, prefix: PageIndex,
                                   into changed: inout [PageIndex]) {
        if a === b { return }
        guard let a, let b else {
            if let present = a ?? b { appendAll(present, shift: shift, prefix: prefix, into: &changed) }
            return
        }
        let aBits = Trie.bitmap(of: a, shift: shift)
        let bBits = Trie.bitmap(of: b, shift: shift)
        var remaining = aBits | bBits
        while remaining != 0 {
            let digit = UInt64(remaining.trailingZeroBitCount)
            remaining &= remaining &- 1
            let bit: UInt64 = 1 << digit
            let index = prefix | digit << shift
            if shift == 0 {
                let aPage = aBits & bit != 0 ? unsafeDowncast(a, to: Leaf.self).element(for: digit).page : nil
                let bPage = bBits & bit != 0 ? unsafeDowncast(b, to: Leaf.self).element(for: digit).page : nil
                if aPage !== bPage { changed.append(index) }
            } else {
                let aChild = aBits & bit != 0 ? unsafeDowncast(a, to: Branch.self).element(for: digit) : nil
                let bChild = bBits & bit != 0 ? unsafeDowncast(b, to: Branch.self).element(for: digit) : nil
                difference(aChild, bChild, shift: shift - Trie.bitsPerLevel, prefix: index, into: &changed)
            }
        }
    }

    /// Every index in the subtree `node` at `shift`, whose index bits above it are `prefix`.
    private static func appendAll(_ node: AnyObject, shift: UInt64, prefix: PageIndex, into changed: inout [PageIndex]) {
        var remaining = Trie.bitmap(of: node, shift: shift)
        while remaining != 0 {
            let digit = UInt64(remaining.trailingZeroBitCount)
            remaining &= remaining &- 1
            let index = prefix | digit << shift
            if shift == 0 {
                changed.append(index)
            } else {
                appendAll(unsafeDowncast(node, to: Branch.self).element(for: digit), shift: shift - Trie.bitsPerLevel,
                          prefix: index, into: &changed)
            }
        }
    }
}
