import PageStateKernel
import PageStateMemory
import SystemPackage

/// A `PageMap` made addressable: a virtual range reserved for the memory's maximum size, in which
/// the memory's pages are mapped without copying — layer files and allocator pages `MAP_PRIVATE`
/// from their descriptors, pages never written as anonymous zero memory. Writes through the mapping
/// stay private to it: they never reach a file, an allocator page or the `PageMap`.
///
/// Invariants: `[address, address + capacity)` is reserved for the object's lifetime; the first
/// `sizeInPages` pages are readable and writable, the rest `PROT_NONE`. The files mapped stay open
/// while `shown` (which holds their layers and pages) is alive.
public final class MappedMemory: @unchecked Sendable {
    /// The first byte of the memory.
    public let address: UnsafeMutableRawPointer
    /// Pages reserved: the most the memory may grow to.
    public let capacityInPages: UInt64
    /// Pages currently accessible.
    public internal(set) var sizeInPages: UInt64
    /// The version of the memory the mapping was built from (writes through the mapping are not in it).
    public internal(set) var shown: PageMap

    /// Reserves `capacityInPages` pages and maps `map` into the start of the range.
    ///
    /// - Complexity: O(runs): one `mmap` per layer file and per run of delta pages contiguous in
    ///   both index and file offset.
    public init(showing map: PageMap, capacityInPages: UInt64) throws(MappingError) {
        guard map.sizeInPages <= capacityInPages else {
            throw .capacityExceeded(requestedPages: map.sizeInPages, capacityPages: capacityInPages)
        }
        do {
            address = try mapMemory(length: Self.bytes(capacityInPages), protection: .none,
                                    flags: [.private, .anonymous, .noReserve])
        } catch { throw .system(.reserve, error) }
        self.capacityInPages = capacityInPages
        sizeInPages = 0
        shown = map
        do {
            try mapZeros(0..<map.sizeInPages)
            sizeInPages = map.sizeInPages
            for layer in map.layers { try mapRuns(layer.fileRuns) }
            try mapRuns(map.delta.fileRuns)
        } catch {
            try? unmapMemory(address, length: Self.bytes(capacityInPages))
            throw error
        }
    }

    deinit {
        try? unmapMemory(address, length: Self.bytes(capacityInPages))
    }

    /// The accessible bytes.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: address, count: Int(sizeInPages) * Page.size)
    }

    static func bytes(_ pages: UInt64) -> Int { Int(pages) * Page.size }

    func pageAddress(_ index: PageIndex) -> UnsafeMutableRawPointer { address + Int(index) * Page.size }

    /// Maps fresh zero pages over `pages`.
    func mapZeros(_ pages: Range<PageIndex>) throws(MappingError) {
        guard !pages.isEmpty else { return }
        do {
            _ = try mapMemory(at: pageAddress(pages.lowerBound), length: Self.bytes(UInt64(pages.count)),
                              protection: [.read, .write], flags: [.private, .anonymous, .fixed, .noReserve])
        } catch { throw .system(.mapZeros, error) }
    }

    /// Maps each run's file pages privately over the pages it covers.
    func mapRuns(_ runs: [FileRun]) throws(MappingError) {
        for run in runs {
            do {
                _ = try mapMemory(at: pageAddress(run.firstPage), length: Self.bytes(run.pageCount),
                                  protection: [.read, .write], flags: [.private, .fixed],
                                  descriptor: run.descriptor, offset: run.offset)
            } catch { throw .system(.mapFile, error) }
        }
    }
}
