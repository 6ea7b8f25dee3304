import Crypto
import PageStateMemory

/// The overlay file format, version 1 (design/formats.md): the pages, written sequentially in
/// ascending index order; then an index of page ranges; then a 64-byte footer.
///
///     [pages: stored × 4096][index: ranges × (firstPage u64, pageCount u64)][footer]
///     footer = magic "PSOVRLY1" u64, version u32, flags u32 (0), stored u64, ranges u64,
///              SHA-256 of index + the footer's first 32 bytes
///
/// Little-endian throughout. Pages stay page aligned so the file can be mapped zero-copy.
enum OverlayFormat {
    static let magic = UInt64(littleEndianBytes: Array("PSOVRLY1".utf8))
    static let version: UInt32 = 1
    static let footerSize = 64
    static let indexEntrySize = 16

    /// Consecutive indices stored consecutively: `pageCount` pages from `firstPage`, whose bytes
    /// start at file page `slot`.
    struct Range: Hashable, Sendable {
        var firstPage: PageIndex
        var pageCount: UInt64
        var slot: UInt64
        var endPage: PageIndex { firstPage + pageCount }
    }

    /// The ranges covering `indices` (ascending, unique).
    ///
    /// - Complexity: O(n).
    static func ranges(of indices: [PageIndex]) -> [Range] {
        var ranges: [Range] = []
        for (slot, index) in indices.enumerated() {
            if let last = ranges.last, last.endPage == index {
                ranges[ranges.count - 1].pageCount += 1
            } else {
                ranges.append(Range(firstPage: index, pageCount: 1, slot: UInt64(slot)))
            }
        }
        return ranges
    }

    /// The index and footer that follow `storedPages` pages covered by `ranges`.
    static func trailer(ranges: [Range], storedPages: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        for range in ranges {
            writer.append(range.firstPage)
            writer.append(range.pageCount)
        }
        writer.append(magic)
        writer.append(version)
        writer.append(UInt32(0))
        writer.append(storedPages)
        writer.append(UInt64(ranges.count))
        writer.appendChecksum()
        return writer.bytes
    }

    /// Parses and checks the trailer of a file of `fileSize` bytes whose last bytes are `tail`
    /// (at least the footer; the whole index when `tail` is long enough).
    ///
    /// - Returns: the ranges, or the number of trailing bytes needed when `tail` is too short.
    /// - Complexity: O(ranges).
    static func parse(path: String, fileSize: UInt64, tail: UnsafeRawBufferPointer) throws(StoreError) -> ParseResult {
        guard fileSize >= UInt64(footerSize), tail.count >= footerSize else {
            throw .malformedFile(path: path, offset: 0, reason: "shorter than the \(footerSize)-byte footer")
        }
        let footerOffset = fileSize - UInt64(footerSize)
        var footer = ByteReader(path: path, bytes: UnsafeRawBufferPointer(rebasing: tail[(tail.count - footerSize)...]),
                                base: footerOffset)
        guard try footer.read(UInt64.self) == magic else { throw footer.failure("not an overlay file (bad magic)", at: 0) }
        let version: UInt32 = try footer.read()
        guard version == Self.version else { throw footer.failure("unsupported overlay version \(version)", at: 8) }
        guard try footer.read(UInt32.self) == 0 else { throw footer.failure("unknown flags", at: 12) }
        let stored: UInt64 = try footer.read()
        let rangeCount: UInt64 = try footer.read()
        let (dataBytes, overflowA) = stored.multipliedReportingOverflow(by: UInt64(Page.size))
        let (indexBytes, overflowB) = rangeCount.multipliedReportingOverflow(by: UInt64(indexEntrySize))
        guard !overflowA, !overflowB, dataBytes <= footerOffset, indexBytes == footerOffset - dataBytes else {
            throw footer.failure("counts (\(stored) pages, \(rangeCount) ranges) do not match the file size \(fileSize)", at: 16)
        }
        let trailerSize = Int(indexBytes) + footerSize
        guard tail.count >= trailerSize else { return .needsTrailer(bytes: trailerSize) }
        let trailer = UnsafeRawBufferPointer(rebasing: tail[(tail.count - trailerSize)...])
        guard SHA256.hash(data: UnsafeRawBufferPointer(rebasing: trailer[..<(trailerSize - 32)]))
            .elementsEqual(trailer[(trailerSize - 32)...])
        else { throw .malformedFile(path: path, offset: fileSize - 32, reason: "index checksum mismatch") }
        var index = ByteReader(path: path, bytes: UnsafeRawBufferPointer(rebasing: trailer[..<Int(indexBytes)]), base: dataBytes)
        var ranges: [Range] = []
        ranges.reserveCapacity(Int(rangeCount))
        var slot: UInt64 = 0
        for _ in 0..<rangeCount {
            let entry = index.position
            let first: UInt64 = try index.read()
            let count: UInt64 = try index.read()
            let (end, overflow) = first.addingReportingOverflow(count)
            guard count > 0, !overflow, end <= PageMapLimits.maximumPages else {
                throw index.failure("range \(first)+\(count) is empty or out of range", at: entry)
            }
            if let previous = ranges.last, first < previous.endPage {
                throw index.failure("range at page \(first) overlaps or precedes the previous one", at: entry)
            }
            guard count <= stored - slot else { throw index.failure("ranges hold more pages than the file", at: entry) }
            ranges.append(Range(firstPage: first, pageCount: count, slot: slot))
            slot += count
        }
        guard slot == stored else {
            throw .malformedFile(path: path, offset: footerOffset + 16, reason: "ranges hold \(slot) pages, footer says \(stored)")
        }
        return .ranges(ranges)
    }

    enum ParseResult {
        case ranges([Range])
        case needsTrailer(bytes: Int)
    }
}

/// Bounds on what a memory may address.
enum PageMapLimits {
    /// 2^52 pages: every byte address of such a memory fits in 64 bits.
    static let maximumPages: UInt64 = 1 << 52
}

extension UInt64 {
    /// The integer whose little-endian bytes are `bytes` (8 of them).
    init(littleEndianBytes bytes: [UInt8]) {
        self = bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}
