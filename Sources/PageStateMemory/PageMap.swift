/// A guest memory: read-only layers (an optional base file and overlays, oldest first) beneath an
/// in-memory `PageDelta`. Pages never written read as zeros.
///
/// A `PageMap` is a value: copies are O(1) and independent (writes to one never show in another),
/// because writes never modify a page — they allocate new pages from `allocator`. Its fields live in
/// one copy-on-write box, so a copy costs one retain however many fields it has.
public struct PageMap: Sendable {
    /// The fields, shared by copies until one of them changes. A box is only changed through a
    /// `PageMap` holding its only reference (`makeUnique()`), so no other thread can see it while it
    /// changes: that makes `@unchecked Sendable` sound and the runtime's exclusivity checks on
    /// every field access (a class's fields get them) needless.
    private final class Storage: @unchecked Sendable {
        let allocator: PageAllocator
        @exclusivity(unchecked) var layers: [any PageLayer]
        @exclusivity(unchecked) var delta: PageDelta
        @exclusivity(unchecked) var unflushedDelta: PageDelta
        @exclusivity(unchecked) var sizeInPages: UInt64

        init(allocator: PageAllocator, layers: [any PageLayer], delta: PageDelta, unflushedDelta: PageDelta, sizeInPages: UInt64) {
            self.allocator = allocator
            self.layers = layers
            self.delta = delta
            self.unflushedDelta = unflushedDelta
            self.sizeInPages = sizeInPages
        }

        func copy() -> Storage {
            Storage(allocator: allocator, layers: layers, delta: delta, unflushedDelta: unflushedDelta, sizeInPages: sizeInPages)
        }
    }

    private var storage: Storage

    /// Where written pages are allocated.
    public var allocator: PageAllocator { storage.allocator }
    /// Read-only layers, oldest first.
    public var layers: [any PageLayer] { storage.layers }
    /// Every page written or applied above the layers.
    public var delta: PageDelta { storage.delta }
    /// The pages of `delta` changed since the last `markFlushed()`.
    public var unflushedDelta: PageDelta { storage.unflushedDelta }
    /// The memory's size in pages: at least every layer's extent and every page written.
    public var sizeInPages: UInt64 { storage.sizeInPages }

    /// Whether this value and `other` are copies of one value that neither changed since (they share
    /// their box): then they are equal. False says nothing; equal maps made apart compare false.
    ///
    /// - Complexity: O(1).
    public func isUnchangedCopy(of other: PageMap) -> Bool { storage === other.storage }

    /// A memory over `layers` (oldest first) that allocates written pages from `allocator`.
    public init(allocator: PageAllocator, layers: [any PageLayer] = []) {
        storage = Storage(allocator: allocator, layers: layers, delta: PageDelta(), unflushedDelta: PageDelta(),
                          sizeInPages: layers.map(\.pageCount).max() ?? 0)
    }

    /// Gives this value a box of its own before it changes.
    ///
    /// - Complexity: O(1) (a shared box is copied field by field).
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Calls `body` with the current bytes of page `index` (zeros when never written).
    ///
    /// - Complexity: O(log₆₄ n + layers).
    public func withPage<R, E: Error>(_ index: PageIndex, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        if let bytes = delta.bytes(ofPage: index) { return try body(bytes) }
        for layer in layers.reversed() {
            if let bytes = layer.bytes(ofPage: index) { return try body(bytes) }
        }
        return try body(ZeroPage.bytes)
    }

    /// Calls `body` with the bytes of each page in `indices`, in order, without copying: the buffers
    /// stay valid for the whole call because `self` holds the pages and layers they point into.
    ///
    /// - Complexity: O(k × (log₆₄ n + layers)) for k indices.
    public func withPages<R, E: Error>(
        _ indices: [PageIndex], _ body: ([UnsafeRawBufferPointer]) throws(E) -> R
    ) throws(E) -> R {
        let buffers = indices.map { index in withPage(index) { $0 } }
        return try withExtendedLifetime(self) { () throws(E) -> R in try body(buffers) }
    }

    /// Whether page `index` was ever written or applied, or is held by a layer (else it reads as zeros).
    ///
    /// - Complexity: O(log₆₄ n + layers).
    public func contains(_ index: PageIndex) -> Bool {
        delta.bytes(ofPage: index) != nil || layers.contains { $0.bytes(ofPage: index) != nil }
    }

    /// A copy of page `index`.
    public func page(_ index: PageIndex) -> [UInt8] { withPage(index) { Array($0) } }

    /// Copies `buffer.count` bytes starting at byte `address` into `buffer`.
    ///
    /// - Complexity: O(pages spanned × (log₆₄ n + layers)).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws(PageMapError) {
        try Self.checkRange(address: address, count: buffer.count)
        forEachPage(address: address, count: buffer.count) { index, inPage, inBuffer in
            withPage(index) { page in
                UnsafeMutableRawBufferPointer(rebasing: buffer[inBuffer])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: page[inPage]))
            }
        }
    }

    /// `count` bytes starting at byte `address`.
    public func read(at address: UInt64, count: Int) throws(PageMapError) -> [UInt8] {
        try Self.checkRange(address: address, count: count)
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in try! read(into: buffer, at: address) }  // range checked above
        return bytes
    }

    /// Writes `bytes` at byte `address`. Each page touched is replaced by a new page (old contents
    /// plus the written bytes); pages other `PageMap`s share are never modified.
    ///
    /// - Throws: `PageMapError.addressOverflow`, or the allocator's error (nothing is written then).
    /// - Complexity: O(pages spanned × (log₆₄ n + layers)), one 4 KiB copy per page.
    public mutating func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        try Self.checkRange(address: address, count: bytes.count)
        var written = PageDelta()
        try forEachPage(address: address, count: bytes.count) { index, inPage, inBytes in
            let source = UnsafeRawBufferPointer(rebasing: bytes[inBytes])
            let page = try allocator.allocate { target in
                if inPage.count < Page.size { withPage(index) { target.copyMemory(from: $0) } }
                UnsafeMutableRawBufferPointer(rebasing: target[inPage]).copyMemory(from: source)
            }
            written[index] = page
        }
        apply(written)
    }

    /// Writes `bytes` at byte `address`.
    public mutating func write(_ bytes: [UInt8], at address: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: address) }
    }

    /// Applies pages produced elsewhere (an execution's dirty pages): they replace the pages at
    /// their indices and count as unflushed.
    ///
    /// - Complexity: as `PageDelta.union(_:)`.
    public mutating func apply(_ pages: PageDelta) {
        guard let last = pages.lastIndex else { return }
        makeUnique()
        storage.delta.formUnion(pages)
        storage.unflushedDelta.formUnion(pages)
        storage.sizeInPages = max(storage.sizeInPages, last + 1)
    }

    /// Grows the memory to at least `pages` pages; new pages read as zeros.
    ///
    /// - Complexity: O(1).
    public mutating func grow(toPages pages: UInt64) {
        guard pages > sizeInPages else { return }
        makeUnique()
        storage.sizeInPages = pages
    }

    /// Records that `unflushedDelta` has been written out.
    ///
    /// - Complexity: O(1).
    public mutating func markFlushed() {
        guard !unflushedDelta.isEmpty else { return }
        makeUnique()
        storage.unflushedDelta = PageDelta()
    }

    private static func checkRange(address: UInt64, count: Int) throws(PageMapError) {
        guard count >= 0, !address.addingReportingOverflow(UInt64(count)).overflow else {
            throw .addressOverflow(address: address, count: count)
        }
    }

    /// Splits a checked byte range into per-page pieces: (page index, range in the page, range in the bytes).
    private func forEachPage(
        address: UInt64, count: Int, _ body: (PageIndex, Range<Int>, Range<Int>) throws -> Void
    ) rethrows {
        let size = UInt64(Page.size)
        var done = 0
        while done < count {
            let position = address + UInt64(done)
            let inPage = Int(position % size)
            let length = min(Page.size - inPage, count - done)
            try body(position / size, inPage..<(inPage + length), done..<(done + length))
            done += length
        }
    }
}

/// 4,096 zero bytes, for reading pages that were never written.
enum ZeroPage {
    /// Allocated once, zeroed, never written or freed.
    nonisolated(unsafe) static let bytes = UnsafeRawBufferPointer(
        UnsafeMutableRawBufferPointer.allocate(byteCount: Page.size, alignment: Page.size).initializeMemory(
            as: UInt8.self, repeating: 0))
}
