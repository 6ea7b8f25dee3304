import PageStateKernel
import PageStateMemory
import Synchronization
import SystemPackage

/// A mapped, validated overlay file used as a read-only layer of a `PageMap`.
///
/// Opening reads and checks only the index and footer (O(ranges)); the pages are mapped, never
/// read, so loading many guests costs O(files). The descriptor is closed after mapping — a state
/// with 10,000 guests must not hold 20,000 descriptors — and reopened on demand for `fileRuns`.
///
/// Invariants: the file is immutable (overlays are never rewritten) and the mapping lives as long
/// as the layer; `retaining` (a checkpoint pin) keeps the checkpoint from being garbage collected.
public final class OverlayLayer: PageLayer, @unchecked Sendable {
    /// The file the layer was opened from.
    public let path: FilePath
    /// Pages stored in the file.
    public let storedPages: UInt64
    public let pageCount: UInt64
    /// The file's size in bytes.
    public let fileSize: UInt64
    let ranges: [OverlayFormat.Range]
    private let base: UnsafeRawPointer?
    private let retaining: AnyObject?
    private let mappingDescriptor = Mutex<FileDescriptor?>(nil)

    /// Opens, checks and maps the overlay at `path`; `retaining` is kept alive with the layer.
    ///
    /// - Throws: `StoreError.malformedFile` naming the file and offset, or `.system`.
    public init(path: FilePath, retaining: AnyObject? = nil) throws(StoreError) {
        self.path = path
        self.retaining = retaining
        let descriptor = try FileReading.open(path)
        defer { try? descriptor.close() }
        let fileSize = try system("stat", path) { UInt64(try descriptor.stat().size) }
        self.fileSize = fileSize
        var ranges: [OverlayFormat.Range]?
        // The trailer starts at a page boundary: read the file's last partial page (at least the
        // footer), then exactly the trailer when it is longer. Page bytes are never read — they may
        // not be in the page cache (overlays are written with direct I/O).
        var tailSize = Int(min(fileSize, UInt64(max(Int(fileSize % UInt64(Page.size)), OverlayFormat.footerSize))))
        while ranges == nil {
            let tail = try Self.readTail(descriptor, path: path, fileSize: fileSize, count: tailSize)
            switch try tail.withBytes({ bytes throws(StoreError) in
                try OverlayFormat.parse(path: path.string, fileSize: fileSize, tail: bytes)
            }) {
            case .ranges(let parsed): ranges = parsed
            case .needsTrailer(let bytes): tailSize = bytes
            }
        }
        self.ranges = ranges!
        storedPages = self.ranges.reduce(0) { $0 + $1.pageCount }
        pageCount = self.ranges.last?.endPage ?? 0
        if storedPages == 0 {
            base = nil
        } else {
            let length = Int(storedPages) * Page.size
            base = UnsafeRawPointer(try system("mmap", path) {
                try mapMemory(length: length, protection: .read, flags: .shared, descriptor: descriptor)
            })
        }
    }

    deinit {
        if let base { try? unmapMemory(UnsafeMutableRawPointer(mutating: base), length: Int(storedPages) * Page.size) }
        mappingDescriptor.withLock { try? $0?.close() }
    }

    private static func readTail(_ descriptor: FileDescriptor, path: FilePath, fileSize: UInt64, count: Int) throws(StoreError) -> [UInt8] {
        guard UInt64(count) <= fileSize else {
            throw .malformedFile(path: path.string, offset: 0, reason: "index larger than the file")
        }
        return try FileReading.read(descriptor, path: path, at: fileSize - UInt64(count), count: count)
    }

    /// - Complexity: O(log ranges).
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        guard let base, let range = range(containing: index) else { return nil }
        let slot = range.slot + (index - range.firstPage)
        return UnsafeRawBufferPointer(start: base + Int(slot) * Page.size, count: Page.size)
    }

    /// - Complexity: O(ranges).
    public var pageRanges: [Range<PageIndex>] { ranges.map { $0.firstPage..<$0.endPage } }

    /// One run per index range, from a descriptor opened on first use. When the file can no longer be
    /// opened (removed behind the manager's back) the mapped bytes are copied into a sealed memfd, so
    /// mappings stay correct.
    ///
    /// - Complexity: O(ranges).
    public var fileRuns: [FileRun] {
        guard storedPages > 0 else { return [] }
        let descriptor = mappingDescriptor.withLock { descriptor in
            if descriptor == nil { descriptor = openForMapping() }
            return descriptor!
        }
        return ranges.map {
            FileRun(firstPage: $0.firstPage, pageCount: $0.pageCount, descriptor: descriptor, offset: $0.slot * UInt64(Page.size))
        }
    }

    private func openForMapping() -> FileDescriptor {
        if let descriptor = try? FileDescriptor.open(path, .readOnly, options: .closeOnExec),
           let size = try? descriptor.stat().size, UInt64(size) == fileSize {
            return descriptor
        }
        let bytes = UnsafeRawBufferPointer(start: base, count: Int(storedPages) * Page.size)
        do {
            let copy = try FileDescriptor.memfd(name: "pagestate-overlay")
            _ = try copy.writeAll(toAbsoluteOffset: 0, bytes)
            try copy.addSeals([.shrink, .grow, .write])
            return copy
        } catch {
            fatalError("overlay \(path): file gone and no memory for a copy: \(error)")
        }
    }

    /// Binary search over the ranges.
    private func range(containing index: PageIndex) -> OverlayFormat.Range? {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].endPage <= index { low = middle + 1 } else { high = middle }
        }
        guard low < ranges.count, ranges[low].firstPage <= index else { return nil }
        return ranges[low]
    }
}
