extension PageDelta {
    /// A delta holding `pages`; where an index occurs more than once, the later page wins.
    ///
    /// Builds the trie bottom-up from the sorted pages instead of inserting one by one, so every node
    /// is allocated once at its final size and touched in order.
    ///
    /// - Complexity: O(n log n) for n pages; O(n) when they arrive in ascending index order.
    public init<S: Sequence>(_ pages: S) where S.Element == (index: PageIndex, page: Page) {
        let entries = Array(pages)
        // Sort (index, position) pairs — plain integers, so comparisons touch no reference counts —
        // and keep the last position of every index.
        var order = entries.indices.map { (index: entries[$0].index, position: $0) }
        if !order.isSorted(by: <) { order.sort(by: <) }
        var unique: [(index: PageIndex, position: Int)] = []
        unique.reserveCapacity(order.count)
        for item in order {
            if unique.last?.index == item.index { unique[unique.count - 1] = item } else { unique.append(item) }
        }
        self.init()
        guard let last = unique.last else { return }
        rootShift = Self.shift(covering: last.index)
        root = Self.build(unique[...], from: entries, shift: rootShift)
        rootChanged()
    }

    /// The node at `shift` holding `entries[position]` for every item of `items` (ascending, unique
    /// indices, all sharing the index bits above the node).
    private static func build(
        _ items: ArraySlice<(index: PageIndex, position: Int)>, from entries: [(index: PageIndex, page: Page)],
        shift: UInt64
    ) -> AnyObject {
        if shift == 0 {
            let leaf = Leaf.make(capacity: items.count)
            leaf.withUnsafeMutablePointers { header, elements in
                for (offset, item) in items.enumerated() {
                    (elements + offset).initialize(to: LeafEntry(entries[item.position].page))
                    header.pointee.bitmap |= 1 << (item.index & 63)
                }
                header.pointee.count = items.count
            }
            return leaf
        }
        var children: [(digit: UInt64, node: AnyObject)] = []
        var start = items.startIndex
        while start < items.endIndex {
            let digit = (items[start].index >> shift) & 63
            var end = start + 1
            while end < items.endIndex && (items[end].index >> shift) & 63 == digit { end += 1 }
            children.append((digit, build(items[start..<end], from: entries, shift: shift - Trie.bitsPerLevel)))
            start = end
        }
        let branch = Branch.make(capacity: children.count)
        branch.withUnsafeMutablePointers { header, elements in
            for (offset, child) in children.enumerated() {
                (elements + offset).initialize(to: child.node)
                header.pointee.bitmap |= 1 << child.digit
            }
            header.pointee.count = items.count
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
