import PageState
import PropertyChecking
import Testing

@Suite struct PageListMessageTests {
    @Test func roundTrips() throws {
        let pages = try TestPages()
        var delta = PageDelta()
        for index in [0, 5, 1 << 30] as [PageIndex] { delta[index] = try pages.page(Int(index)) }
        let message = PageListMessage(describing: delta, in: pages.allocator)
        let decoded = try PageListMessage(decoding: message.encoded())
        #expect(decoded == message)
        #expect(try pages.allocator.resolve(decoded.locations).model == delta.model)
    }

    @Test func rejectsMalformedHeaders() throws {
        let valid = PageListMessage(identity: 1, length: 4096 * 1025, locations: [
            .init(index: 3, place: .init(offset: 4096, tag: 1)), .init(index: 2, place: .init(offset: 8192, tag: 2)),
        ]).encoded()
        #expect(throws: PageListMessageError.truncated(expected: 32, actual: 3)) { try PageListMessage(decoding: Array(valid.prefix(3))) }
        #expect(throws: PageListMessageError.badMagic) { try PageListMessage(decoding: [0] + valid.dropFirst()) }
        #expect(throws: PageListMessageError.unsortedIndex(offset: 56)) { try PageListMessage(decoding: valid) }
        #expect(throws: PageListMessageError.trailingBytes(expected: valid.count, actual: valid.count + 1)) {
            try PageListMessage(decoding: valid + [0])
        }
        var huge = valid
        huge.replaceSubrange(24..<32, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: PageListMessageError.tooManyEntries(0x7FFF_FFFF_FFFF_FFFF)) { try PageListMessage(decoding: huge) }
    }

    @Test(.shrinking)
    func corruptedBytesNeverCrash() async throws {
        let valid = PageListMessage(identity: 1, length: 4096 * 1025, locations: (0..<4).map {
            .init(index: PageIndex($0), place: .init(offset: UInt64($0 + 1) * 4096, tag: UInt32($0 + 1)))
        }).encoded()
        await checkProperty(count: 300, input: Gen.int(in: 0...(valid.count - 1)), Gen.int(in: 0...255), Gen.int(in: 0...valid.count)) {
            position, value, cut in
            var bytes = valid
            bytes[position] = UInt8(value)
            bytes.removeLast(valid.count - max(cut, 0))
            if let decoded = try? PageListMessage(decoding: bytes) {
                #expect(decoded.encoded() == bytes, "what decodes must re-encode to the same bytes")
            }
        }
    }
}
