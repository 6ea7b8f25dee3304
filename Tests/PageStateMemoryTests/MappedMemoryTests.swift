import PageState
import PropertyChecking
import Testing

/// A page write for building random memories: page index, byte offset in it, length, fill.
struct PageWrite: Sendable, CustomStringConvertible {
    var page: Int, offset: Int, count: Int, fill: UInt8
    static let generator = zip(Gen.int(in: 0...39), Gen.int(in: 0...4095), Gen.int(in: 1...6000), Gen.int(in: 0...255))
        .map { PageWrite(page: $0, offset: $1, count: $2, fill: UInt8($3)) }
    var address: UInt64 { UInt64(page * Page.size + offset) }
    var description: String { "write(page \(page) + \(offset), \(count) bytes of \(fill))" }
}

@Suite struct MappedMemoryTests {
    /// A base file, an overlay layer (pages 8 and 12) and random writes into the delta.
    static func makeMap(_ writes: [PageWrite], pages: TestPages, base: BaseFileLayer) throws -> PageMap {
        var overlay = PageDelta()
        overlay[8] = try pages.allocator.allocate(copying: [UInt8](repeating: 0xEE, count: Page.size))
        overlay[12] = try pages.allocator.allocate(copying: [UInt8](repeating: 0xEE, count: Page.size))
        var map = PageMap(allocator: pages.allocator, layers: [base, DeltaLayer(overlay)])
        for write in writes { try map.write([UInt8](repeating: write.fill, count: write.count), at: write.address) }
        map.grow(toPages: map.sizeInPages + 3)
        return map
    }

    @Test(.shrinking)
    func mappingShowsExactlyThePageMapAndWritesStayPrivate() async throws {
        let pages = try TestPages()
        let (base, baseBytes) = try PageMapPropertyTests.makeBaseFile()
        await checkProperty(count: 100, input: PageWrite.generator.array(of: 0...30), PageWrite.generator.array(of: 0...10)) {
            writes, scribbles in
            let map = try Self.makeMap(writes, pages: pages, base: base)
            let expected = try map.read(at: 0, count: Int(map.sizeInPages) * Page.size)
            let mapped = try MappedMemory(showing: map, capacityInPages: map.sizeInPages + 16)
            #expect(firstDifference(Array(mapped.bytes), expected) == nil)
            // Writes through the mapping reach neither the PageMap, its pages, nor the base file.
            for scribble in scribbles where Int(scribble.address) + scribble.count <= mapped.bytes.count {
                mapped.bytes[Int(scribble.address)..<(Int(scribble.address) + scribble.count)].initializeMemory(
                    as: UInt8.self, repeating: scribble.fill &+ 1)
            }
            #expect(firstDifference(try map.read(at: 0, count: expected.count), expected) == nil)
            #expect(Array(base.bytes(ofPage: 0)!) == Array(baseBytes.prefix(Page.size)))
        }
    }

    @Test func refusesMemoriesLargerThanTheReservation() throws {
        let pages = try TestPages()
        var map = PageMap(allocator: pages.allocator)
        map.grow(toPages: 10)
        #expect(throws: MappingError.capacityExceeded(requestedPages: 10, capacityPages: 9)) {
            try MappedMemory(showing: map, capacityInPages: 9)
        }
    }

    @Test func deltaPagesContiguousInTheFileMapAsOneRun() throws {
        let pages = try TestPages()
        var delta = PageDelta()
        for index in 0..<4 as Range<PageIndex> { delta[index + 10] = try pages.page(Int(index)) }
        delta[20] = try pages.page(20)
        #expect(delta.fileRuns.map(\.pageCount) == [4, 1])
        #expect(delta.fileRuns.map(\.firstPage) == [10, 20])
    }
}
