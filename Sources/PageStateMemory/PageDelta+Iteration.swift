extension PageDelta: Sequence {
    /// Pages in ascending index order.
    public struct Iterator: IteratorProtocol {
        private struct Frame {
            /// A `Leaf` when `shift` is 0, a `Branch` above.
            let node: AnyObject
            /// Digits of `node` not yet visited.
            var remaining: UInt64
            let shift: UInt64
            /// Index bits above this node's digit.
            let prefix: PageIndex
        }

        private var stack: [Frame] = []
        private let upperBound: PageIndex?

        init(_ delta: PageDelta, from lowerBound: PageIndex = 0, below upperBound: PageIndex? = nil) {
            self.upperBound = upperBound
            guard var node = delta.root, delta.covers(lowerBound) else { return }
            stack.reserveCapacity(11)
            // Descend along `lowerBound`: each frame keeps the digits above the bound's digit; the
            // deepest frame, visited first, keeps the bound's own digit too.
            var shift = delta.rootShift
            var prefix: PageIndex = 0
            while true {
                let bitmap = Trie.bitmap(of: node, shift: shift)
                let digit = (lowerBound >> shift) & 63
                let bit: UInt64 = 1 << digit
                let above = bitmap & ~(bit | (bit &- 1))
                guard shift > 0, bitmap & bit != 0 else {
                    stack.append(Frame(node: node, remaining: shift == 0 ? above | (bitmap & bit) : above,
                                       shift: shift, prefix: prefix))
                    return
                }
                stack.append(Frame(node: node, remaining: above, shift: shift, prefix: prefix))
                node = unsafeDowncast(node, to: Branch.self).element(for: digit)
                prefix |= digit << shift
                shift -= Trie.bitsPerLevel
            }
        }

        /// - Complexity: O(1) amortized.
        public mutating func next() -> (index: PageIndex, page: Page)? {
            while let top = stack.last {
                guard top.remaining != 0 else {
                    stack.removeLast()
                    continue
                }
                let digit = UInt64(top.remaining.trailingZeroBitCount)
                stack[stack.count - 1].remaining &= top.remaining &- 1
                let index = top.prefix | digit << top.shift
                if let upperBound, index >= upperBound {
                    stack.removeAll()
                    return nil
                }
                if top.shift == 0 { return (index, unsafeDowncast(top.node, to: Leaf.self).element(for: digit).page) }
                let child = unsafeDowncast(top.node, to: Branch.self).element(for: digit)
                let childShift = top.shift - Trie.bitsPerLevel
                stack.append(Frame(node: child, remaining: Trie.bitmap(of: child, shift: childShift),
                                   shift: childShift, prefix: index))
            }
            return nil
        }
    }

    /// - Complexity: O(1); a full iteration is O(n).
    public func makeIterator() -> Iterator { Iterator(self) }

    /// - Complexity: O(1).
    public var underestimatedCount: Int { count }

    /// The pages whose indices lie in `range`, in ascending order.
    ///
    /// - Complexity: O(log₆₄ n) to start, then O(1) amortized per page.
    public func pages(in range: Range<PageIndex>) -> some Sequence<(index: PageIndex, page: Page)> {
        IteratorSequence(Iterator(self, from: range.lowerBound, below: range.upperBound))
    }

    /// The indices present, in ascending order.
    ///
    /// - Complexity: O(n).
    public var indices: [PageIndex] { map(\.index) }
}
