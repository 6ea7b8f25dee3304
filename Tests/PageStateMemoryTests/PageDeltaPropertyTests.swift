import PageState
@testable import PageStateMemory
import PropertyChecking
import Testing

/// One step of a random PageDelta history.
enum DeltaOperation: CustomStringConvertible, Sendable {
    case insert(PageIndex)
    /// Consecutive indices, enough to fill leaves past 16 entries (the direct layout).
    case insertRun(PageIndex, length: Int)
    case remove(PageIndex)
    case snapshot
    case unionWithSnapshot(Int, newerWins: Bool)
    case checkRange(PageIndex, PageIndex)
    case rebuildInBulk

    /// Indices cluster in a small range, with sparse large ones to exercise root raising.
    static func index(_ value: Int, _ magnitude: Int) -> PageIndex {
        switch magnitude {
        case 0: PageIndex(value % 200)
        case 1: PageIndex(value)
        case 2: PageIndex(value) << 22
        default: PageIndex.max - PageIndex(value)
        }
    }

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...5000), Gen.int(in: 0...3), Gen.int(in: 0...5000))
        .map { kind, value, magnitude, other -> DeltaOperation in
            switch kind {
            case 0...2: .insert(index(value, magnitude))
            case 3: .insertRun(index(value, magnitude), length: 1 + other % 80)
            case 4, 5: .remove(index(value, magnitude))
            case 6: .snapshot
            case 7: .unionWithSnapshot(value, newerWins: other % 2 == 0)
            case 8: other % 3 == 0 ? .rebuildInBulk : .unionWithSnapshot(value, newerWins: other % 2 == 0)
            default:
                .checkRange(min(index(value, magnitude), index(other, magnitude)),
                            max(index(value, magnitude), index(other, magnitude)))
            }
        }

    var description: String {
        switch self {
        case .insert(let i): "insert(\(i))"
        case .insertRun(let i, let length): "insertRun(\(i), length: \(length))"
        case .remove(let i): "remove(\(i))"
        case .snapshot: "snapshot"
        case .unionWithSnapshot(let s, let newerWins): "union(snapshot \(s), newerWins: \(newerWins))"
        case .checkRange(let a, let b): "range(\(a)..<\(b))"
        case .rebuildInBulk: "rebuildInBulk"
        }
    }
}

@Suite struct PageDeltaPropertyTests {
    @Test(.shrinking)
    func behavesLikeADictionaryAndSnapshotsStayIndependent() async throws {
        let pages = try TestPages()
        await checkProperty(count: 300, input: DeltaOperation.generator.array(of: 0...120)) { operations in
            var delta = PageDelta()
            var model: [PageIndex: Int] = [:]
            var snapshots: [(delta: PageDelta, model: [PageIndex: Int])] = []
            var nextID = 0
            var touched: [PageIndex] = []
            for operation in operations {
                switch operation {
                case .insert(let index):
                    touched.append(index)
                    nextID += 1
                    let old = delta.updateValue(try pages.page(nextID), forIndex: index)
                    #expect(old?.id == model[index])
                    model[index] = nextID
                case .insertRun(let start, let length):
                    let (end, overflow) = start.addingReportingOverflow(PageIndex(length))
                    for index in start..<(overflow ? PageIndex.max : end) {
                        nextID += 1
                        delta[index] = try pages.page(nextID)
                        model[index] = nextID
                    }
                case .remove(let index):
                    touched.append(index)
                    #expect(delta.removeValue(forIndex: index)?.id == model.removeValue(forKey: index))
                case .snapshot:
                    snapshots.append((delta, model))
                case .unionWithSnapshot(let which, let newerWins):
                    guard !snapshots.isEmpty else { continue }
                    let other = snapshots[which % snapshots.count]
                    if newerWins {
                        delta = delta.union(other.delta)
                        model.merge(other.model) { _, newer in newer }
                    } else {
                        delta = other.delta.union(delta)
                        model.merge(other.model) { current, _ in current }
                    }
                case .rebuildInBulk:
                    // Shuffled, with every page repeated after a stale duplicate: the later one must win.
                    let stale = try pages.page(999_999)
                    let entries = delta.map { $0 }
                    let input: [(index: PageIndex, page: Page)] = entries.flatMap { [($0.index, stale), $0] }
                    delta = PageDelta(input)
                    #expect(delta.model == model)
                    delta = PageDelta(entries.shuffled())
                case .checkRange(let low, let high):
                    let expected = model.keys.filter { (low..<high).contains($0) }.sorted()
                    #expect(delta.pages(in: low..<high).map(\.index) == expected)
                }
                #expect(delta.count == model.count)
                #expect(delta.indices == model.keys.sorted())
                #expect(delta.model == model)
                #expect(delta.lastIndex == model.keys.max())
            }
            for index in model.keys { #expect(delta[index]?.id == model[index]) }
            for index in model.keys { #expect(delta.bytes(ofPage: index)?.load(as: UInt64.self) == UInt64(model[index]!)) }
            // Absent pages, removed ones among them: in direct nodes their slots must read as empty.
            for index in Set(touched).subtracting(model.keys) { #expect(delta.bytes(ofPage: index) == nil) }
            #expect(delta.absentSlotsOfDirectNodesAreZero)
            for snapshot in snapshots {
                #expect(snapshot.delta.model == snapshot.model, "a snapshot changed after later operations")
                #expect(snapshot.delta.count == snapshot.model.count)
                // The structural diff agrees with comparing the models (ids identify pages uniquely).
                let expected = Set(snapshot.model.keys).union(model.keys).filter { snapshot.model[$0] != model[$0] }
                #expect(snapshot.delta.changedIndices(comparedTo: delta) == expected.sorted())
            }
        }
    }
}

@Suite struct PageDeltaLayoutTests {
    @Test func rawLookupOffsetsMatchRealNodes() {
        let constant = TrieLayout.offsets
        let measured = TrieLayout.measuredOffsets()
        #expect(constant.bitmap == measured.bitmap)
        #expect(constant.count == measured.count)
        #expect(constant.capacity == measured.capacity)
        #expect(constant.children == measured.children)
        #expect(constant.entries == measured.entries)
        #expect(measured.children == measured.entries, "the insert's NodeAddress finds both kinds' elements at one offset")
        #expect(constant.entryAddress == measured.entryAddress)
        #expect(constant.entryStride == measured.entryStride)
    }

    /// Raw lookups read a direct branch's child slot without its bitmap, so the slot of a removed
    /// child must read as empty, in the delta and in snapshots taken before and after.
    @Test func removedChildrenOfDirectNodesAreAbsent() throws {
        let pages = try TestPages()
        var delta = PageDelta()
        // One page in each of 64 leaves under one branch (a direct branch), and a full direct leaf.
        for leaf in 0..<64 { delta[PageIndex(leaf) * 64] = try pages.page(leaf) }
        for digit in 1..<64 { delta[PageIndex(digit)] = try pages.page(100 + digit) }
        let before = delta
        let removed: [PageIndex] = [64, 640, 63 * 64, 7, 63]
        for index in removed { #expect(delta.removeValue(forIndex: index) != nil) }
        let after = delta
        for index in removed {
            #expect(delta.bytes(ofPage: index) == nil)
            #expect(before.bytes(ofPage: index) != nil)
        }
        #expect(delta.bytes(ofPage: 65) == nil, "a page never written beside a removed one")
        #expect(delta.absentSlotsOfDirectNodesAreZero && before.absentSlotsOfDirectNodesAreZero)
        for index in Set(before.indices).subtracting(removed) {
            #expect(delta.bytes(ofPage: index)?.load(as: UInt64.self) == before.bytes(ofPage: index)?.load(as: UInt64.self))
        }
        // Filling a removed child's slot again.
        delta[640 + 5] = try pages.page(500)
        #expect(delta.bytes(ofPage: 640 + 5)?.load(as: UInt64.self) == 500)
        #expect(delta.bytes(ofPage: 640) == nil)
        #expect(after.bytes(ofPage: 640 + 5) == nil, "a snapshot taken before the refill keeps the slot empty")
        #expect(after.absentSlotsOfDirectNodesAreZero)
    }
}

@Suite struct PageDeltaBulkTests {
    @Test func laterDuplicatesWinInAnyInputOrder() throws {
        let pages = try TestPages()
        let (a, b, c) = (try pages.page(1), try pages.page(2), try pages.page(3))
        let input: [(index: PageIndex, page: Page)] = [(5, a), (1 << 40, c), (5, b), (0, c)]
        let delta = PageDelta(input)
        let expected: [PageIndex: Int] = [0: 3, 5: 2, 1 << 40: 3]
        #expect(delta.model == expected)
        #expect(delta.count == 3)
        let empty: [(index: PageIndex, page: Page)] = []
        #expect(PageDelta(empty).isEmpty)
    }
}

extension PageDelta {
    /// Whether every direct node holds zero bytes in the slots of its absent digits (what raw lookups
    /// rely on to skip a direct branch's bitmap).
    var absentSlotsOfDirectNodesAreZero: Bool {
        func check<Element>(_ node: TrieNode<Element>) -> Bool {
            node.withUnsafeMutablePointers { header, elements in
                guard header.pointee.capacity == TrieNode<Element>.directCapacity else { return true }
                let slots = UnsafeRawBufferPointer(start: elements, count: 64 * MemoryLayout<Element>.stride)
                return (0..<64).allSatisfy { digit in
                    header.pointee.bitmap & (1 << UInt64(digit)) != 0
                        || slots[(digit * MemoryLayout<Element>.stride)..<((digit + 1) * MemoryLayout<Element>.stride)].allSatisfy { $0 == 0 }
                }
            }
        }
        func walk(_ node: AnyObject, shift: UInt64) -> Bool {
            if shift == 0 { return check(unsafeDowncast(node, to: Leaf.self)) }
            let branch = unsafeDowncast(node, to: Branch.self)
            guard check(branch) else { return false }
            var present = branch.bitmap
            while present != 0 {
                guard walk(branch.element(for: UInt64(present.trailingZeroBitCount)), shift: shift - 6) else { return false }
                present &= present - 1
            }
            return true
        }
        return root.map { walk($0, shift: rootShift) } ?? true
    }
}
