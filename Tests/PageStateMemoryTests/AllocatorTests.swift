import Foundation
import PageState
import SystemPackage
import Testing

@Suite struct AllocatorTests {
    @Test func reclaimPunchesStorageOnceTheBatchFills() throws {
        let allocator = try PageAllocator(options: .init(reclaimBatchPages: 1024, reservedReleasedPages: 0))
        var pages = try (0..<2048).map { _ in try allocator.allocate(copying: [UInt8](repeating: 7, count: Page.size)) }
        let before = try allocator.allocatedFileBytes()
        #expect(before >= 2048 * UInt64(Page.size))
        pages.removeLast(1023)
        #expect(try allocator.allocatedFileBytes() == before, "below the batch threshold nothing is punched")
        pages.removeLast(1)
        let after = try allocator.allocatedFileBytes()
        #expect(before - after >= 1024 * UInt64(Page.size))
        #expect(allocator.statistics.reclaimedPages == 1024)
        #expect(allocator.statistics.livePages == 1024)
        // Reclaimed slots are reused, and read back what was written to them.
        let reused = try allocator.allocate(copying: [UInt8](repeating: 9, count: 100))
        #expect(reused.bytes == [UInt8](repeating: 9, count: 100) + [UInt8](repeating: 0, count: Page.size - 100))
        #expect(allocator.statistics.slotsUsed == 2048)
    }

    @Test func aReserveOfReleasedPagesStaysResidentAndIsReusedFirst() throws {
        let allocator = try PageAllocator(options: .init(reclaimBatchPages: 256, reservedReleasedPages: 512))
        var pages = try (0..<1024).map { _ in try allocator.allocate(copying: [UInt8](repeating: 7, count: Page.size)) }
        let before = try allocator.allocatedFileBytes()
        pages.removeLast(767)
        #expect(try allocator.allocatedFileBytes() == before, "reserve + batch not yet crossed")
        let newest = pages.removeLast().location.offset
        #expect(before - (try allocator.allocatedFileBytes()) >= 256 * UInt64(Page.size), "the oldest batch is punched")
        #expect(allocator.statistics.releasedPages == 512)
        #expect(try allocator.allocate(copying: [1]).location.offset == newest, "the most recently released slot comes first")
        withExtendedLifetime(pages) {}
    }

    @Test func memfdIsSealedAgainstShrinking() throws {
        let allocator = try PageAllocator()
        let page = try allocator.allocate(copying: [1, 2, 3])
        let descriptor = allocator.describe().descriptor
        #expect(try descriptor.seals().contains(.shrink))
        #expect(throws: Errno.notPermitted) { try descriptor.resize(to: 0) }
        #expect(page.bytes.prefix(3) == [1, 2, 3])
    }

    @Test func fileGrowsGeometricallyWithFewMappings() throws {
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "geometry-test")))
        let pages = try (0..<5000).map { _ in try allocator.allocate(copying: [1]) }
        // 1024 + 2048 + 4096 slots: three chunks, each one mapping.
        #expect(allocator.statistics.fileLength == UInt64(1025 + 2050 + 4100) * UInt64(Page.size))
        let mappings = try readProcFile("/proc/self/maps")
            .split(separator: "\n").filter { $0.contains("memfd:geometry-test") }
        // One mapping per chunk; the kernel shows two as one line when it happened to place them
        // next to each other in file order (seen once in CI), so count bytes as well as lines.
        #expect((1...3).contains(mappings.count), "one mapping per chunk")
        let mappedBytes = mappings.reduce(UInt64(0)) { total, line in
            let range = line.split(separator: " ")[0].split(separator: "-").map { UInt64($0, radix: 16)! }
            return total + range[1] - range[0]
        }
        #expect(mappedBytes == allocator.statistics.fileLength, "the chunks map the whole file once")
        #expect(pages.count == 5000)
    }

    @Test func metadataStaysBelowOnePercentOfPageBytes() throws {
        let allocator = try PageAllocator()
        let pages = try (0..<100_000).map { _ in try allocator.allocate(copying: [1]) }
        let statistics = allocator.statistics
        #expect(Double(statistics.metadataBytes) / Double(pages.count * Page.size) < 0.01)
    }

    @Test func unnamedFileBackingWorks() throws {
        let allocator = try PageAllocator(options: .init(backing: .unnamedFile(directory: FilePath(NSTemporaryDirectory()))))
        let page = try allocator.allocate(copying: [5, 6])
        #expect(page.bytes.prefix(2) == [5, 6])
    }

    @Test func systemErrorsNameTheOperation() {
        #expect(throws: PageAllocatorError.system(.createBackingFile, .noSuchFileOrDirectory)) {
            try PageAllocator(options: .init(backing: .unnamedFile(directory: "/nonexistent-pagestate-dir")))
        }
    }

    @Test func attachedAllocatorCannotAllocate() throws {
        let owner = try PageAllocator()
        let page = try owner.allocate(copying: [1])
        let description = owner.describe()
        let copy = AllocatorDescription(descriptor: try description.descriptor.duplicate(), identity: 42, length: description.length)
        let attached = try PageAllocator.attach(copy)
        #expect(!attached.isOwner)
        #expect(throws: PageAllocatorError.notOwner) { try attached.allocate(copying: [1]) }
        #expect(try attached.page(at: page.location).bytes == page.bytes)
    }

    @Test func attachingAnOwnedIdentityYieldsTheOwner() throws {
        let owner = try PageAllocator()
        _ = try owner.allocate(copying: [1])
        let description = owner.describe()
        let again = AllocatorDescription(descriptor: try description.descriptor.duplicate(),
                                         identity: description.identity, length: description.length)
        #expect(try PageAllocator.attach(again) === owner)
    }

    @Test func concurrentAllocationAndRelease() async throws {
        let allocator = try PageAllocator(options: .init(reclaimBatchPages: 64, reservedReleasedPages: 32))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var held: [Page] = []
                    for round in 0..<2000 {
                        let fill = UInt8(truncatingIfNeeded: worker &* 31 &+ round)
                        held.append(try allocator.allocate(copying: [UInt8](repeating: fill, count: Page.size)))
                        if round % 3 == 0 { held.removeFirst() }
                    }
                    for (i, page) in held.enumerated() {
                        let round = 2000 - held.count + i
                        #expect(page.bytes.allSatisfy { $0 == UInt8(truncatingIfNeeded: worker &* 31 &+ round) })
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(allocator.statistics.livePages == 0)
    }
}
