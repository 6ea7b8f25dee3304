import PageState

/// Pages whose first eight bytes are an identifying number, for comparing deltas against models.
struct TestPages {
    let allocator: PageAllocator

    init(reclaimBatchPages: Int = 4096) throws {
        allocator = try PageAllocator(options: .init(reclaimBatchPages: reclaimBatchPages))
    }

    func page(_ id: Int) throws -> Page {
        try withUnsafeBytes(of: UInt64(id).littleEndian) { try allocator.allocate(copying: $0) }
    }
}

extension Page {
    /// The identifying number `TestPages.page(_:)` wrote.
    var id: Int { withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) } }
}

extension PageDelta {
    /// The delta as a plain model: index → page id.
    var model: [PageIndex: Int] { Dictionary(uniqueKeysWithValues: map { ($0.index, $0.page.id) }) }
}

/// The first offset where two byte arrays differ (or where the shorter ends), nil when equal:
/// keeps failure messages short where comparing whole memories would print them.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if let offset = a.indices.first(where: { $0 < b.count && a[$0] != b[$0] }) { return offset }
    return a.count == b.count ? nil : min(a.count, b.count)
}
