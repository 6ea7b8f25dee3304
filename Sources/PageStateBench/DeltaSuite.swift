import HashTreeCollections
import PageStateMemory

/// `pagestate bench delta`: the kept PageDelta (radix trie), the rejected TreeDictionary candidate
/// and Swift's Dictionary, measured on the same keys in one run.
public enum DeltaSuite {
    /// Runs the suite with `entries` random page indices drawn from `0..<(1 << indexBits)`.
    public static func run(entries: Int = 1_000_000, indexBits: Int = 20) throws -> BenchReport {
        var report = BenchReport(suite: "delta")
        var generator = SystemRandomNumberGenerator()
        var keySet = Set<PageIndex>(minimumCapacity: entries)
        while keySet.count < entries { keySet.insert(PageIndex.random(in: 0..<(1 << PageIndex(indexBits)), using: &generator)) }
        let keys = Array(keySet).shuffled(using: &generator)
        let lookupOrder = keys.shuffled(using: &generator)
        // Slots only: the page bytes are never touched, so a million pages cost no page memory.
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "pagestate-bench")))
        let pages = try keys.map { _ in try allocator.allocate { _ in } }
        let n = Double(entries)

        // Inserts from empty.
        var trie = PageDelta()
        let trieInsert = Stopwatch.median(repetitions: 3) {
            trie = PageDelta()
            for (key, page) in zip(keys, pages) { trie[key] = page }
        }
        var tree = TreeDictionaryDelta()
        let treeInsert = Stopwatch.median(repetitions: 3) {
            tree = TreeDictionaryDelta()
            for (key, page) in zip(keys, pages) { tree[key] = page }
        }
        var dictionary: [PageIndex: Page] = [:]
        let dictionaryInsert = Stopwatch.median(repetitions: 3) {
            dictionary = [:]
            for (key, page) in zip(keys, pages) { dictionary[key] = page }
        }
        report.figures["inserts_per_second"] = n / trieInsert
        report.figures["treedictionary_inserts_per_second"] = n / treeInsert
        report.figures["dictionary_inserts_per_second"] = n / dictionaryInsert

        // Random lookups, all hits. Frozen copies: a captured `var` would add exclusivity checks.
        let (trieMap, treeMap, dictionaryMap) = (trie, tree, dictionary)
        var found = 0
        let trieLookup = Stopwatch.median { for key in lookupOrder where trieMap.bytes(ofPage: key) != nil { found += 1 } }
        let treeLookup = Stopwatch.median { for key in lookupOrder where treeMap[key] != nil { found += 1 } }
        let dictionaryLookup = Stopwatch.median { for key in lookupOrder where dictionaryMap[key] != nil { found += 1 } }
        precondition(found == entries * 15, "every lookup must hit")
        report.figures["lookups_per_second"] = n / trieLookup
        report.figures["treedictionary_lookups_per_second"] = n / treeLookup
        report.figures["dictionary_lookups_per_second"] = n / dictionaryLookup

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
        let trieUnion = Stopwatch.median { unionCount = trieMap.union(trieSmall).count }
        let treeUnion = Stopwatch.median { unionCount = treeMap.union(treeSmall).count }
        let dictionaryUnion = Stopwatch.median { unionCount = dictionaryMap.merging(dictionarySmall) { $1 }.count }
        precondition(unionCount > entries)
        report.figures["union_10k_into_1m_ms"] = trieUnion * 1e3
        report.figures["treedictionary_union_10k_into_1m_ms"] = treeUnion * 1e3
        report.figures["dictionary_union_10k_into_1m_ms"] = dictionaryUnion * 1e3

        // Clone, then modify one page of the clone: the snapshot cost.
        let clones = 1000
        let trieClone = Stopwatch.median {
            for i in 0..<clones {
                var copy = trieMap
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        let treeClone = Stopwatch.median {
            for i in 0..<clones {
                var copy = treeMap
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        let dictionaryClone = Stopwatch.median(repetitions: 3) {
            for i in 0..<10 {
                var copy = dictionaryMap
                copy[keys[i]] = pages[i + 1]
                precondition(copy.count == entries)
            }
        }
        report.figures["clone_modify_ns"] = trieClone / Double(clones) * 1e9
        report.figures["treedictionary_clone_modify_ns"] = treeClone / Double(clones) * 1e9
        report.figures["dictionary_clone_modify_ns"] = dictionaryClone / 10 * 1e9

        // Iteration in ascending index order.
        var last: PageIndex = 0
        let trieSorted = Stopwatch.median(repetitions: 3) { for (index, _) in trieMap { last = max(last, index) } }
        let treeSorted = Stopwatch.median(repetitions: 3) { for (index, _) in treeMap.sorted { last = max(last, index) } }
        let dictionarySorted = Stopwatch.median(repetitions: 3) {
            for (index, _) in dictionaryMap.sorted(by: { $0.key < $1.key }) { last = max(last, index) }
        }
        report.figures["sorted_iteration_ms"] = trieSorted * 1e3
        report.figures["treedictionary_sorted_iteration_ms"] = treeSorted * 1e3
        report.figures["dictionary_sorted_iteration_ms"] = dictionarySorted * 1e3

        report.figures["lookups_vs_treedictionary"] = treeLookup / trieLookup
        report.figures["inserts_vs_treedictionary"] = treeInsert / trieInsert
        report.figures["lookups_vs_dictionary"] = dictionaryLookup / trieLookup
        report.figures["allocator_metadata_ratio"] =
            Double(allocator.statistics.metadataBytes) / Double(allocator.statistics.slotsUsed * Page.size)
        report.notes.append("\(entries) distinct random page indices in 0..<2^\(indexBits), looked up in a different random order")
        report.notes.append("kept: PageDelta (64-way radix trie); rejected: TreeDictionary (CHAMP); baseline: Dictionary (not persistent)")
        report.notes.append("medians of 3-5 runs; ratios > 1 mean PageDelta is faster")
        if !BenchReport.isOptimized { report.notes.append("DEBUG BUILD: figures are not representative; use -c release") }
        withExtendedLifetime((pages, last)) {}
        return report
    }
}
