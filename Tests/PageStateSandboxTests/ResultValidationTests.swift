@testable import PageStateSandbox
import PageState
import SystemPackage
import Testing

/// A compromised worker controls every byte and descriptor of its result; the host must reject any
/// that is inconsistent before the guest changes. These tests play the worker.
@Suite("Worker results are validated before adoption")
struct ResultValidationTests {
    let guest: Guest

    init() throws {
        guest = try Guest(id: 1, heapCapacityInPages: 16, stableCapacityInPages: 16)
        guest.modify { heap, _ in heap.grow(toPages: 4) }
    }

    func success(heap: [PageLocation], heapSize: UInt64 = 4, grown: UInt64 = 0) -> ResultMessage.Success {
        .init(output: [], heapSize: heapSize, stableSize: 0, grownPages: grown, heapPages: heap, stablePages: [])
    }

    func adopt(_ result: ResultMessage.Success, file: FileDescriptor?, kind: ExecutionKind = .update,
               allowance: UInt64 = 0) throws(ExecutionError) -> ExecutionOutcome {
        try ResultAdoption.adopt(result, file: file, kind: kind, guest: guest, from: guest.versions, allowance: allowance).0
    }

    func sealedFile(pages: Int) throws -> (FileDescriptor, [PageLocation.Place]) {
        let page = [UInt8](repeating: 9, count: Page.size)
        return try page.withUnsafeBytes { buffer in try SealedPageFile.write(Array(repeating: buffer, count: pages)) }
    }

    @Test("a valid sealed result is adopted without copying: the guest's pages live in the result file")
    func validResultIsAdopted() throws {
        let (file, places) = try sealedFile(pages: 2)
        let outcome = try adopt(success(heap: [PageLocation(index: 1, place: places[0]), PageLocation(index: 3, place: places[1])]), file: file)
        #expect(outcome.heapDelta.count == 2)
        #expect(guest.heap.page(3) == [UInt8](repeating: 9, count: Page.size))
        #expect(guest.heap.delta[1]!.allocator !== guest.heap.allocator)
    }

    @Test("offsets outside the file, misaligned, or on metadata are rejected")
    func foreignOffsets() throws {
        for offset: UInt64 in [1 << 40, 4097, 0] {
            let (file, places) = try sealedFile(pages: 1)
            #expect(throws: ExecutionError.self) {
                try adopt(success(heap: [PageLocation(index: 0, place: .init(offset: offset, tag: places[0].tag))]), file: file)
            }
        }
        let (file, places) = try sealedFile(pages: 1)
        #expect(throws: ExecutionError.self) {  // a slot with the wrong tag
            try adopt(success(heap: [PageLocation(index: 0, place: .init(offset: places[0].offset, tag: 77))]), file: file)
        }
        #expect(contents(guest.heap) == [UInt8](repeating: 0, count: 4 * Page.size))
    }

    @Test("a file the worker could still change — the guest's own allocator, an unsealed memfd — is refused")
    func mutableFilesAreRefused() throws {
        let page = try guest.heap.allocator.allocate(copying: [1, 2, 3])
        let writable = try FileDescriptor.memfd(name: "unsealed")
        try writable.addSeals(.shrink)
        for file in [writable, try FileDescriptor.open("/proc/self/fd/\(guest.heap.allocator.descriptor.rawValue)", .readWrite)] {
            let error = #expect(throws: ExecutionError.self) {
                try adopt(success(heap: [PageLocation(index: 0, place: page.location)]), file: file)
            }
            guard case .rejectedPages = error else { Issue.record("got \(String(describing: error))"); continue }
        }
    }

    @Test("indices beyond the size, sizes that shrink or exceed capacity, unreported growth, and queries with changes")
    func inconsistentReports() throws {
        let (file, places) = try sealedFile(pages: 1)
        #expect(throws: ExecutionError.rejectedPages("a page index beyond its memory's size")) {
            try adopt(success(heap: [PageLocation(index: 4, place: places[0])]), file: file)
        }
        for bad in [success(heap: [], heapSize: 3), success(heap: [], heapSize: 17, grown: 13), success(heap: [], heapSize: 6, grown: 1)] {
            #expect(throws: ExecutionError.self) { try adopt(bad, file: nil, allowance: 100) }
        }
        #expect(throws: ExecutionError.self) { try adopt(success(heap: [], heapSize: 6, grown: 2), file: nil, allowance: 1) }
        #expect(throws: ExecutionError.self) { try adopt(success(heap: [PageLocation(index: 0, place: places[0])]), file: nil) }
        let (query, queryPlaces) = try sealedFile(pages: 1)
        #expect(throws: ExecutionError.malformedResult("a query reported changes")) {
            try adopt(success(heap: [PageLocation(index: 0, place: queryPlaces[0])]), file: query, kind: .query)
        }
        #expect(guest.heap.sizeInPages == 4)
    }

    @Test("truncated, trailing, unsorted and oversized result messages are malformed, never a crash")
    func malformedMessages() throws {
        let good = ResultMessage.success(success(heap: [PageLocation(index: 1, place: .init(offset: 4096, tag: 1)),
                                                        PageLocation(index: 2, place: .init(offset: 8192, tag: 1))]))
            .reply(to: 5, forgotten: [77, 78]).encoded()
        let decoded = try ResultMessage.decode(good, outputLimit: 10)
        #expect(decoded.requestID == 5 && decoded.forgotten == [77, 78])
        for cut in 0..<good.count {
            #expect(throws: ProtocolError.self) { try ResultMessage.decode(Array(good[..<cut]), outputLimit: 10) }
        }
        #expect(throws: ProtocolError.self) { try ResultMessage.decode(good + [0], outputLimit: 10) }
        let unsorted = ResultMessage.success(success(heap: [PageLocation(index: 2, place: .init(offset: 4096, tag: 1)),
                                                            PageLocation(index: 1, place: .init(offset: 8192, tag: 1))]))
        #expect(throws: ProtocolError.self) { try ResultMessage.decode(unsorted.reply(to: 1).encoded(), outputLimit: 10) }
        let big = ResultMessage.success(.init(output: [UInt8](repeating: 1, count: 11), heapSize: 0, stableSize: 0,
                                              grownPages: 0, heapPages: [], stablePages: []))
        #expect(throws: ProtocolError.self) { try ResultMessage.decode(big.reply(to: 1).encoded(), outputLimit: 10) }
        // A forgotten list longer than allowed (or than the bytes present) is refused before allocating.
        let huge = [UInt64(1), UInt64(ResultMessage.maximumForgotten + 1)].flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        #expect(throws: ProtocolError.self) { try ResultMessage.decode(huge, outputLimit: 10) }
    }
}
