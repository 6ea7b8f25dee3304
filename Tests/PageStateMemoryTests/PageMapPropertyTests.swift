import Foundation
import PageState
import PropertyChecking
import SystemPackage
import Testing

/// One step of a random PageMap history, run against a byte-array model.
enum MapOperation: CustomStringConvertible, Sendable {
    case write(address: Int, count: Int, fill: UInt8)
    case read(address: Int, count: Int)
    case clone
    case applyDelta(firstPage: Int, pages: Int, fill: UInt8)
    case markFlushed

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...(MapModel.pages * Page.size - 1)),
                               Gen.int(in: 0...9000), Gen.int(in: 0...255))
        .map { kind, address, count, fill -> MapOperation in
            switch kind {
            case 0...3: .write(address: address, count: count, fill: UInt8(fill))
            case 4, 5: .read(address: address, count: count)
            case 6: .clone
            case 7, 8: .applyDelta(firstPage: address / Page.size, pages: 1 + count % 4, fill: UInt8(fill))
            default: .markFlushed
            }
        }

    var description: String {
        switch self {
        case .write(let a, let c, let f): "write(\(a), \(c), fill \(f))"
        case .read(let a, let c): "read(\(a), \(c))"
        case .clone: "clone"
        case .applyDelta(let p, let n, let f): "apply(pages \(p)..<\(p + n), fill \(f))"
        case .markFlushed: "markFlushed"
        }
    }
}

/// The plain model: the memory as one byte array, plus the pages changed since the last flush.
struct MapModel {
    static let pages = 24
    var bytes: [UInt8]
    var sizeInPages: Int
    var unflushed: Set<PageIndex> = []

    static func pattern(_ fill: UInt8, _ i: Int) -> UInt8 { fill &+ UInt8(truncatingIfNeeded: i &* 7) }
}

@Suite struct PageMapPropertyTests {
    /// A base file of 10.5 pages of pseudo-random bytes (the half page reads as zero-padded).
    static func makeBaseFile() throws -> (BaseFileLayer, [UInt8]) {
        let path = FilePath(FileManager.default.temporaryDirectory.path).appending("pagestate-base-\(UInt64.random(in: 0...UInt64.max))")
        var generator = SystemRandomNumberGenerator()
        let contents = (0..<(10 * Page.size + Page.size / 2)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let fd = try FileDescriptor.open(path, .readWrite, options: [.create, .truncate], permissions: .ownerReadWrite)
        try fd.closeAfter { _ = try fd.writeAll(contents) }
        defer { try? FileManager.default.removeItem(atPath: path.string) }
        return (try BaseFileLayer(path: path), contents)
    }

    /// Also: `isUnchangedCopy(of:)` holds for a fresh clone, and only between maps that are equal.
    @Test(.shrinking)
    func behavesLikeAByteArrayAndClonesStayIndependent() async throws {
        let pages = try TestPages()
        let (base, baseBytes) = try Self.makeBaseFile()
        // An overlay layer above the base: pages 8 and 12 filled with 0xEE.
        var overlay = PageDelta()
        overlay[8] = try pages.allocator.allocate(copying: [UInt8](repeating: 0xEE, count: Page.size))
        overlay[12] = try pages.allocator.allocate(copying: [UInt8](repeating: 0xEE, count: Page.size))
        var initial = [UInt8](repeating: 0, count: MapModel.pages * Page.size)
        initial.replaceSubrange(0..<baseBytes.count, with: baseBytes)
        for page in [8, 12] { initial.replaceSubrange(page * Page.size..<(page + 1) * Page.size, with: repeatElement(0xEE, count: Page.size)) }

        await checkProperty(count: 200, input: MapOperation.generator.array(of: 0...60)) { operations in
            var map = PageMap(allocator: pages.allocator, layers: [base, DeltaLayer(overlay)])
            var model = MapModel(bytes: initial, sizeInPages: 13)
            var clones: [(map: PageMap, model: MapModel)] = []
            #expect(map.sizeInPages == 13)
            for operation in operations {
                switch operation {
                case .write(let address, let count, let fill):
                    let count = min(count, model.bytes.count - address)
                    let bytes = (0..<count).map { MapModel.pattern(fill, $0) }
                    try map.write(bytes, at: UInt64(address))
                    model.bytes.replaceSubrange(address..<(address + count), with: bytes)
                    if count > 0 {
                        let touched = (address / Page.size)...((address + count - 1) / Page.size)
                        model.unflushed.formUnion(touched.map(PageIndex.init))
                        model.sizeInPages = max(model.sizeInPages, touched.upperBound + 1)
                    }
                case .read(let address, let count):
                    let count = min(count, model.bytes.count - address)
                    #expect(try map.read(at: UInt64(address), count: count) == Array(model.bytes[address..<(address + count)]))
                case .clone:
                    clones.append((map, model))
                    #expect(map.isUnchangedCopy(of: clones.last!.map))
                case .applyDelta(let first, let n, let fill):
                    var delta = PageDelta()
                    for index in first..<min(first + n, MapModel.pages) {
                        let bytes = (0..<Page.size).map { MapModel.pattern(fill &+ UInt8(truncatingIfNeeded: index), $0) }
                        delta[PageIndex(index)] = try pages.allocator.allocate(copying: bytes)
                        model.bytes.replaceSubrange(index * Page.size..<(index + 1) * Page.size, with: bytes)
                        model.unflushed.insert(PageIndex(index))
                        model.sizeInPages = max(model.sizeInPages, index + 1)
                    }
                    map.apply(delta)
                case .markFlushed:
                    map.markFlushed()
                    model.unflushed = []
                }
                #expect(map.sizeInPages == UInt64(model.sizeInPages))
                #expect(Set(map.unflushedDelta.indices) == model.unflushed)
            }
            #expect(try map.read(at: 0, count: model.bytes.count) == model.bytes)
            for clone in clones {
                #expect(try clone.map.read(at: 0, count: clone.model.bytes.count) == clone.model.bytes,
                        "a clone changed after later writes")
                if clone.map.isUnchangedCopy(of: map) {
                    #expect(clone.model.bytes == model.bytes && clone.model.unflushed == model.unflushed
                            && clone.model.sizeInPages == model.sizeInPages, "an unchanged copy differs")
                }
            }
        }
    }
}
