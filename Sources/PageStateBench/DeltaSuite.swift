import HashTreeCollections
import PageStateMemory

/// `pagestate bench delta`: the kept PageDelta (radix trie), the rejected TreeDictionary candidate
/// and Swift's Dictionary, measured on the same keys in one run.
public enum DeltaSuite {
    /// Runs the suite with `entries` random page indices drawn from `0..<(1 << indexBits)`.
    public static func run(entries: Int = 1_000_000, indexBits: Int = 20) throws -> BenchReport {
        var report = BenchReport(suite: "delta")
        var generator = SystemRandomNumberGenerator()
        let (keys, lookupOrder) = randomKeys(entries, below: 1 << PageIndex(indexBits), using: &generator)
        // Slots only: the page bytes are never touched, so a million pages cost no page memory.
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "pagestate-bench")))
        let pages = try keys.map { _ in try allocator.allocate { _ in } }
        let n = Double(entries)

        // Inserts from empty, then random lookups (all hits).
        let (trieInsert, trie) = timeBuilds(keys, pages, PageDelta()) { $0[$1] = $2 }
        let (treeInsert, tree) = timeBuilds(keys, pages, TreeDictionaryDelta()) { $0[$1] = $2 }
        let (dictionaryInsert, dictionary) = timeBuilds(keys, pages, [PageIndex: Page]()) { $0[$1] = $2 }
        let trieRetainedInsert = timeBuilds(keys, pages, PageDelta(), retaining: true) { $0[$1] = $2 }.seconds
        let dictionaryRetainedInsert = timeBuilds(keys, pages, [PageIndex: Page](), retaining: true) { $0[$1] = $2 }.seconds
        // Bulk construction from pages already in index order, as commits and resolves produce them.
        let inOrder = zip(keys, pages).map { (index: $0, page: $1) }.sorted { $0.index < $1.index }
        var bulkBuilds: [PageDelta] = []
        let trieBulkInsert = Stopwatch.median(repetitions: 3) { bulkBuilds.append(PageDelta(inOrder)) }
        precondition(bulkBuilds[0].count == entries)
        bulkBuilds = []
        let trieLookup = timeLookups(lookupOrder) { trie.bytes(ofPage: $0) != nil }
        let treeLookup = timeLookups(lookupOrder) { tree[$0] != nil }
        let dictionaryLookup = timeLookups(lookupOrder) { dictionary[$0] != nil }
        report.figures["inserts_per_second"] = n / trieInsert
        report.figures["bulk_inserts_per_second"] = n / trieBulkInsert
        report.figures["treedictionary_inserts_per_second"] = n / treeInsert
        report.figures["dictionary_inserts_per_second"] = n / dictionaryInsert
        report.figures["retained_inserts_per_second"] = n / trieRetainedInsert
        report.figures["dictionary_retained_inserts_per_second"] = n / dictionaryRetainedInsert
        report.figures["lookups_per_second"] = n / trieLookup
        report.figures["treedictionary_lookups_per_second"] = n / treeLookup
        report.figures["dictionary_lookups_per_second"] = n / dictionaryLookup

        // The same with indices 16 times sparser: partly filled nodes, one more level.
        let sparseBits = min(indexBits + 4, 40)
        let (sparseKeys, sparseOrder) = randomKeys(entries, below: 1 << PageIndex(sparseBits), using: &generator)
        let (sparseTrieInsert, sparseTrie) = timeBuilds(sparseKeys, pages, PageDelta()) { $0[$1] = $2 }
        let (sparseDictionaryInsert, sparseDictionary) = timeBuilds(sparseKeys, pages, [PageIndex: Page]()) { $0[$1] = $2 }
        report.figures["sparse_inserts_per_second"] = n / sparseTrieInsert
        report.figures["sparse_dictionary_inserts_per_second"] = n / sparseDictionaryInsert
        report.figures["sparse_lookups_per_second"] = n / timeLookups(sparseOrder) { sparseTrie.bytes(ofPage: $0) != nil }
        report.figures["sparse_dictionary_lookups_per_second"] = n / timeLookups(sparseOrder) { sparseDictionary[$0] != nil }

        // Union of a 10,000-page delta (newer) into the full one.
        let small = 10_000
        var trieSmall = PageDelta()
        var treeSmall = TreeDictionaryDelta()
        var dictionarySmall: [PageIndex: Page] = [:]
        for i in 0..<small {
            let key = i % 2 == 0 ? keys[i] : PageIndex.random(in: 0..<(1 << PageIndex(indexBits)), using: &generator)
            trieSmall[key] = pages[i]
            treeSmall[key] = pages[i]
            dictionarySmall[key] = pages[i]
        }
        var unionCount = 0
        let trieUnion = Stopwatch.median { unionCount = trie.union(trieSmall).count }
        let treeUnion = Stopwatch.median { unionCount = tree.union(treeSmall).count }
        let dictionaryUnion = Stopwatch.median { unionCount = dictionary.merging(dictionarySmall) { $1 }.count }
        precondition(unionCount > entries)
        report.figures["union_ms"] = trieUnion * 1e3
        report.figures["treedictionary_union_ms"] = treeUnion * 1e3
        report.figures["dictionary_union_ms"] = dictionaryUnion * 1e3

        // Clone, then modify one page of the clone: the snapshot cost.
        let clones = 1000
        let trieClone = Stopwatch.median {
            for i in 0..<clones {
                var copy = trie
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        let treeClone = Stopwatch.median {
            for i in 0..<clones {
                var copy = tree
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        let dictionaryClone = Stopwatch.median(repetitions: 3) {
            for i in 0..<10 {
                var copy = dictionary
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        report.figures["clone_modify_ns"] = trieClone / Double(clones) * 1e9
        report.figures["treedictionary_clone_modify_ns"] = treeClone / Double(clones) * 1e9
        report.figures["dictionary_clone_modify_ns"] = dictionaryClone / 10 * 1e9

        // Iteration in ascending index order.
        var last: PageIndex = 0
        let trieSorted = Stopwatch.median(repetitions: 3) { for (index, _) in trie { last = max(last, index) } }
        let treeSorted = Stopwatch.median(repetitions: 3) { for (index, _) in tree.sorted { last = max(last, index) } }
        let dictionarySorted = Stopwatch.median(repetitions: 3) {
            for (index, _) in dictionary.sorted(by: { $0.key < $1.key }) { last = max(last, index) }
        }
        report.figures["sorted_iteration_ms"] = trieSorted * 1e3
        report.figures["treedictionary_sorted_iteration_ms"] = treeSorted * 1e3
        report.figures["dictionary_sorted_iteration_ms"] = dictionarySorted * 1e3

        report.figures["lookups_vs_treedictionary"] = treeLookup / trieLookup
        report.figures["inserts_vs_treedictionary"] = treeInsert / trieInsert
        report.figures["lookups_vs_dictionary"] = dictionaryLookup / trieLookup
        report.figures["allocator_metadata_ratio"] =
            Double(allocator.statistics.metadataBytes) / Double(allocator.statistics.slotsUsed * Page.size)
        report.notes.append("\(entries) distinct random page indices in 0..<2^\(indexBits) (sparse_*: 0..<2^\(sparseBits)), looked up in a different random order")
        report.notes.append("union: \(small) pages (half replacing existing ones) into the full delta; clone_modify: copy the full delta and replace one page")
        report.notes.append("inserts: one subscript assignment per page in random index order, each page's reference moved in (as PageMap.write hands over the page it just made); retained_inserts: the same from an array that keeps its references (one atomic increment more per insert); bulk_inserts: PageDelta(pages) from the same pages in index order")
        report.notes.append("kept: PageDelta (64-way radix trie); rejected: TreeDictionary (CHAMP); baseline: Dictionary (not persistent)")
        report.notes.append("medians of 3-5 runs; ratios > 1 mean PageDelta is faster")
        if !BenchReport.isOptimized { report.notes.append("DEBUG BUILD: figures are not representative; use -c release") }
        withExtendedLifetime((pages, last)) {}
        return report
    }

    /// `count` distinct random indices below `bound`, in random order, and the same in another order.
    static func randomKeys(
        _ count: Int, below bound: PageIndex, using generator: inout SystemRandomNumberGenerator
    ) -> (keys: [PageIndex], lookupOrder: [PageIndex]) {
        var set = Set<PageIndex>(minimumCapacity: count)
        while set.count < count { set.insert(PageIndex.random(in: 0..<bound, using: &generator)) }
        let keys = Array(set).shuffled(using: &generator)
        return (keys, keys.shuffled(using: &generator))
    }

    /// Median seconds to build a map by inserting every key; the builds are torn down untimed.
    /// Each page's reference is moved into the map (taken, untimed, before the clock starts), or with
    /// `retaining` copied from `pages`, which keeps its own.
    @inline(__always)
    static func timeBuilds<Map>(
        _ keys: [PageIndex], _ pages: [Page], _ empty: Map, retaining: Bool = false,
        insert: (inout Map, PageIndex, consuming Page) -> Void
    ) -> (seconds: Double, built: Map) {
        var builds: [Map] = []
        let seconds = Stopwatch.median(repetitions: 3) {
            builds.removeAll()  // its memory is reused, as in a process that has been running a while
            return retaining ? nil : OwnedPages(pages)
        } _: { owned in
            var map = empty
            if let owned {
                for (i, key) in keys.enumerated() { insert(&map, key, owned.take(i)) }
                owned.deallocate()
            } else {
                for (key, page) in zip(keys, pages) { insert(&map, key, page) }
            }
            builds.append(map)
        }
        return (seconds, builds[0])
    }

    /// Median seconds to look every key up; every lookup must hit.
    @inline(__always)
    static func timeLookups(_ keys: [PageIndex], _ isPresent: (PageIndex) -> Bool) -> Double {
        var found = 0
        let seconds = Stopwatch.median { for key in keys where isPresent(key) { found += 1 } }
        precondition(found == keys.count * 5, "every lookup must hit")
        return seconds
    }
}
