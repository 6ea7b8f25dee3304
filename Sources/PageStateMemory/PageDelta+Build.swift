extension PageDelta {
    /// A delta holding `pages`; where an index occurs more than once, the later page wins.
    ///
    /// Builds the trie bottom-up from the sorted pages instead of inserting one by one, so every node
    /// is allocated once at its final size and touched in order.
    ///
    /// - Complexity: O(n log n) for n pages; O(n) when they arrive in ascending index order.
    public init<S: Sequence>(_ pages: S) where S.Element == (index: PageIndex, page: Page) {
        var sorted = Array(pages)
        if !sorted.isSorted(by: { $0.index < $1.index }) {
            // Sort positions, not pages, so that equal indices keep their order (the later one wins).
            let order = sorted.indices.sorted { (sorted[$0].index, $0) < (sorted[$1].index, $1) }
            sorted = order.map { sorted[$0] }
        }
        sorted = sorted.enumerated().filter { $0.offset + 1 == sorted.count || sorted[$0.offset + 1].index != $0.element.index }
            .map(\.element)
        self.init()
        guard let last = sorted.last else { return }
        rootShift = Self.shift(covering: last.index)
        root = Self.build(sorted[...], shift: rootShift)
        rootChanged()
    }

    /// The node at `shift` holding `pages` (ascending, unique, all sharing the index bits above the node).
    private static func build(_ pages: ArraySlice<(index: PageIndex, page: Page)>, shift: UInt64) -> AnyObject {
        if shift == 0 {
            let leaf = Leaf.make(capacity: pages.count)
            leaf.withUnsafeMutablePointers { header, elements in
                for (position, entry) in pages.enumerated() {
                    (elements + position).initialize(to: LeafEntry(entry.page))
                    header.pointee.bitmap |= 1 << (entry.index & 63)
                }
                header.pointee.count = pages.count
            }
            return leaf
        }
        var children: [(digit: UInt64, node: AnyObject)] = []
        var start = pages.startIndex
        while start < pages.endIndex {
            let digit = (pages[start].index >> shift) & 63
            var end = start + 1
            while end < pages.endIndex && (pages[end].index >> shift) & 63 == digit { end += 1 }
            children.append((digit, build(pages[start..<end], shift: shift - Trie.bitsPerLevel)))
            start = end
        }
        let branch = Branch.make(capacity: children.count)
        branch.withUnsafeMutablePointers { header, elements in
            for (position, child) in children.enumerated() {
                (elements + position).initialize(to: child.node)
                header.pointee.bitmap |= 1 << child.digit
            }
            header.pointee.count = pages.count
        }
        return branch
    }
}

extension Sequence {
    fileprivate func isSorted(by areInIncreasingOrder: (Element, Element) -> Bool) -> Bool {
        var iterator = makeIterator()
        guard var previous = iterator.next() else { return true }
        while let next = iterator.next() {
            if areInIncreasingOrder(next, previous) { return false }
            previous = next
        }
        return true
    }
}
