import PageStateMemory

/// A page of a guest memory as the host names it to a worker: which allocator (by identity; the
/// file travels in the same message or an earlier one), where in it, and the slot's tag.
struct PageReference: Hashable {
    var index: PageIndex
    var allocator: UInt64
    var place: PageLocation.Place

    static let wireSize = 28
}

/// A run of a layer's pages in one of the message's layer files.
struct RunReference: Hashable {
    var firstPage: PageIndex
    var pageCount: UInt64
    var file: UInt32
    var offset: UInt64
}

/// How a worker's view of one memory changes before an execution.
enum MemoryUpdate: Hashable {
    /// The worker already shows this version.
    case unchanged
    /// Map this version afresh: its layers' runs and its delta's pages.
    case image(sizeInPages: UInt64, capacityInPages: UInt64, layers: [[RunReference]], pages: [PageReference])
    /// Same layers as the version the worker shows; these delta pages changed (none removed).
    case changes(sizeInPages: UInt64, pages: [PageReference])
}

/// A file a message hands over: an allocator file (pages named by identity), a layer file, or a
/// prepared result file (`SealedPageFile.prepare`) the worker writes its next update's pages into.
enum FileEntry: Hashable {
    case allocator(identity: UInt64, length: UInt64)
    case layer
    case resultFile
}

extension WireSink {
    mutating func append(_ update: MemoryUpdate) {
        switch update {
        case .unchanged:
            append(UInt8(0))
        case .image(let size, let capacity, let layers, let pages):
            append(UInt8(1))
            append(size)
            append(capacity)
            append(UInt64(layers.count))
            for runs in layers {
                append(UInt64(runs.count))
                for run in runs { append(run.firstPage); append(run.pageCount); append(run.file); append(run.offset) }
            }
            append(pages)
        case .changes(let size, let pages):
            append(UInt8(2))
            append(size)
            append(pages)
        }
    }

    private mutating func append(_ pages: [PageReference]) {
        append(UInt64(pages.count))
        for page in pages { append(page.index); append(page.allocator); append(page.place.offset); append(page.place.tag) }
    }

    mutating func append(_ file: FileEntry) {
        switch file {
        case .allocator(let identity, let length): append(UInt8(1)); append(identity); append(length)
        case .layer: append(UInt8(2)); append(UInt64(0)); append(UInt64(0))
        case .resultFile: append(UInt8(3)); append(UInt64(0)); append(UInt64(0))
        }
    }
}

extension WireReader {
    /// Limits that keep a message's allocations bounded by its size.
    static let maximumEntries = 1 << 24

    mutating func readMemoryUpdate(files: Int) throws(ProtocolError) -> MemoryUpdate {
        let start = position
        switch try read(UInt8.self) {
        case 0:
            return .unchanged
        case 1:
            let size: UInt64 = try read()
            let capacity: UInt64 = try read()
            guard size <= capacity else { throw .malformed(offset: start, "size beyond capacity") }
            let layerCount = try readCount(entrySize: 8, limit: 4096)
            var layers: [[RunReference]] = []
            for _ in 0..<layerCount {
                let runCount = try readCount(entrySize: 28, limit: Self.maximumEntries)
                var runs: [RunReference] = []
                runs.reserveCapacity(runCount)
                for _ in 0..<runCount {
                    let run = RunReference(firstPage: try read(), pageCount: try read(), file: try read(), offset: try read())
                    guard Int(run.file) < files else { throw .malformed(offset: position - 12, "run names file \(run.file) of \(files)") }
                    runs.append(run)
                }
                layers.append(runs)
            }
            return .image(sizeInPages: size, capacityInPages: capacity, layers: layers, pages: try readPages())
        case 2:
            return .changes(sizeInPages: try read(), pages: try readPages())
        default:
            throw .malformed(offset: start, "unknown memory update kind")
        }
    }

    private mutating func readPages() throws(ProtocolError) -> [PageReference] {
        let count = try readCount(entrySize: PageReference.wireSize, limit: Self.maximumEntries)
        var pages: [PageReference] = []
        pages.reserveCapacity(count)
        for _ in 0..<count {
            pages.append(PageReference(index: try read(), allocator: try read(), place: .init(offset: try read(), tag: try read())))
        }
        return pages
    }

    mutating func readFileEntry() throws(ProtocolError) -> FileEntry {
        let start = position
        let kind: UInt8 = try read()
        let identity: UInt64 = try read()
        let length: UInt64 = try read()
        switch kind {
        case 1: return .allocator(identity: identity, length: length)
        case 2: return .layer
        case 3: return .resultFile
        default: throw .malformed(offset: start, "unknown file kind")
        }
    }
}
