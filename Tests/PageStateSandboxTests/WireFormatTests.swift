@testable import PageStateSandbox
@testable import PageStateSoak
import PageState
import PropertyChecking
import Testing

/// The shape of a random host ⇄ worker message; every value in it comes from `seed`.
struct MessageShape: Sendable, CustomStringConvertible {
    var seed: Int
    var input: Int
    var files: Int
    /// Per memory: 0 unchanged, 1 image, 2 changes; then layers and pages.
    var updates: [Int]

    static let generator = zip(Gen.int(in: 0...Int.max), Gen.int(in: 0...300), Gen.int(in: 0...4), Gen.int(in: 0...8).array(of: 6...6))
        .map { MessageShape(seed: $0, input: $1, files: $2, updates: $3) }

    var description: String { "seed \(seed), input \(input) B, \(files) files, updates \(updates)" }

    var executeMessage: ExecuteMessage {
        var values = SplitMix64(seed: UInt64(seed))
        let names = ["kv.get", "", "ünïcode.名前", "\u{0}\u{FFFD}\u{FFFF}𝄞", String(repeating: "n", count: ExecuteMessage.maximumEntryPointName)]
        let files: [FileEntry] = (0..<files).map { _ in
            switch values.next() % 3 {
            case 0: .allocator(identity: values.next(), length: values.next())
            case 1: .layer
            default: .resultFile
            }
        }
        func update(_ kind: Int, layers: Int, pages: Int) -> MemoryUpdate {
            let references = (0..<pages).map { _ in
                PageReference(index: values.next(), allocator: values.next(), place: .init(offset: values.next(), tag: UInt32(truncatingIfNeeded: values.next())))
            }
            switch kind % 3 {
            case 0: return .unchanged
            case 1:
                let runs = (0..<layers).map { _ in
                    (0..<Int(values.next() % 4)).map { _ in
                        RunReference(firstPage: values.next(), pageCount: values.next(), file: UInt32(values.next() % UInt64(max(files.count, 1))), offset: values.next())
                    }
                }
                let size = values.next() >> 1
                return .image(sizeInPages: size, capacityInPages: size + values.next() >> 1, layers: files.isEmpty ? [] : runs, pages: references)
            default: return .changes(sizeInPages: values.next(), pages: references)
            }
        }
        let request = ExecutionRequest(
            entryPoint: names[Int(values.next() % UInt64(names.count))], input: (0..<input).map { _ in UInt8(truncatingIfNeeded: values.next()) },
            kind: values.next() % 2 == 0 ? .update : .query,
            system: SystemData(guestID: values.next(), caller: values.next(), height: values.next(), time: values.next()),
            memoryAllowancePages: values.next(), dirtyPageLimit: values.next())
        var message = ExecuteMessage(requestID: values.next(), request: request, files: files,
                                     heap: update(updates[0], layers: updates[1], pages: updates[2]),
                                     stable: update(updates[3], layers: updates[4], pages: updates[5]))
        message.spinMicroseconds = UInt32(values.next() % UInt64(ExecuteMessage.maximumSpinMicroseconds + 1))
        return message
    }

    var reply: ResultMessage.Reply {
        var values = SplitMix64(seed: UInt64(seed))
        let result: ResultMessage
        if updates[0] % 4 == 3 {
            let errors: [ExecutionError] = [.trapped("ünïcode"), .unknownEntryPoint("x"), .memoryAllowanceExhausted(requestedPages: 3, remainingPages: 1),
                                            .capacityExceeded(memory: "heap", requestedPages: 9, capacityPages: 8),
                                            .outOfBounds(memory: "stable", offset: 1, count: 2, size: 3),
                                            .dirtyPageLimitExceeded(limit: 4, written: 5), .workerFailure("broken")]
            result = .failure(errors[Int(values.next() % UInt64(errors.count))])
        } else {
            // Page lists in ascending index order, as the decoder demands.
            func pages(_ count: Int) -> [PageLocation] {
                var index: UInt64 = 0
                return (0..<count).map { _ in
                    index += 1 + values.next() % 1000
                    return PageLocation(index: index, place: .init(offset: values.next(), tag: UInt32(truncatingIfNeeded: values.next())))
                }
            }
            result = .success(.init(output: (0..<input).map { _ in UInt8(truncatingIfNeeded: values.next()) }, heapSize: values.next(),
                                    stableSize: values.next(), grownPages: values.next(), heapPages: pages(updates[1]), stablePages: pages(updates[2])))
        }
        return result.reply(to: values.next(), forgotten: (0..<files).map { _ in values.next() })
    }
}

extension ExecuteMessage: Equatable {
    public static func == (a: ExecuteMessage, b: ExecuteMessage) -> Bool {
        a.requestID == b.requestID && a.request == b.request && a.files == b.files && a.heap == b.heap && a.stable == b.stable
            && a.spinMicroseconds == b.spinMicroseconds
    }
}

extension ResultMessage: Equatable {
    public static func == (a: ResultMessage, b: ResultMessage) -> Bool {
        switch (a, b) {
        case (.failure(let x), .failure(let y)): x == y
        case (.success(let x), .success(let y)):
            x.output == y.output && x.heapSize == y.heapSize && x.stableSize == y.stableSize && x.grownPages == y.grownPages
                && x.heapPages == y.heapPages && x.stablePages == y.stablePages
        default: false
        }
    }
}

@Suite("Wire format: messages are sized exactly, written in place, and decode to what was sent")
struct WireFormatTests {
    @Test(.shrinking) func executeMessagesRoundTrip() async {
        await checkProperty(count: 300, input: MessageShape.generator) { shape in
            let message = shape.executeMessage
            let bytes = message.encoded()
            #expect(bytes.count == message.encodedCount, "\(shape)")
            let decoded = try ExecuteMessage(decoding: bytes, inputLimit: 1 << 20)
            #expect(decoded == message, "\(shape)")
            // Every strict prefix is malformed.
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) {
                #expect(throws: ProtocolError.self, "\(shape), cut at \(cut)") { try ExecuteMessage(decoding: Array(bytes[..<cut]), inputLimit: 1 << 20) }
            }
        }
    }

    @Test(.shrinking) func resultRepliesRoundTrip() async {
        await checkProperty(count: 300, input: MessageShape.generator) { shape in
            let reply = shape.reply
            let bytes = reply.encoded()
            #expect(bytes.count == reply.encodedCount, "\(shape)")
            let decoded = try ResultMessage.decode(bytes, outputLimit: 1 << 20)
            #expect(decoded.requestID == reply.requestID && decoded.forgotten == reply.forgotten && decoded.result == reply.result, "\(shape)")
        }
    }

    /// A message small enough for the mailbox is encoded straight into the slot; one too large for
    /// it goes through the socket. Both arrive as the same bytes `encoded()` makes.
    @Test(arguments: [0, 40_000])
    func messagesEncodedInPlaceArriveIntact(inputBytes: Int) throws {
        let pair = try ChannelPair()
        defer { pair.close() }
        var shape = MessageShape(seed: 7, input: 0, files: 3, updates: [1, 2, 3, 2, 0, 4])
        shape.input = inputBytes
        let message = shape.executeMessage
        try pair.host.send(.execute, message)
        let received = try pair.worker.receive(limit: 1 << 20, maximumDescriptors: 0, spin: .microseconds(50), deadline: .now + .seconds(5))
        guard case .message(.execute, let bytes, _) = received else {
            Issue.record("arrived as \(String(describing: received))")
            return
        }
        #expect(bytes == message.encoded())
        #expect(try ExecuteMessage(decoding: bytes, inputLimit: 1 << 20) == message)
    }

    /// Invalid UTF-8 at the start, in the middle and at the end of a name: a byte never used, a
    /// stray continuation byte, an overlong encoding, an encoded surrogate, a sequence cut short.
    @Test(arguments: [(0, [0xFF]), (2, [0x80]), (1, [0xC0, 0xAF]), (3, [0xED, 0xA0, 0x80]), (4, [0xE2, 0x82])])
    func anEntryPointNameThatIsNotUTF8IsMalformed(at offset: Int, bytes invalid: [UInt8]) throws {
        var message = MessageShape(seed: 1, input: 3, files: 0, updates: [0, 0, 0, 0, 0, 0]).executeMessage
        message.request.entryPoint = "kv.get"
        var bytes = message.encoded()
        #expect(try ExecuteMessage(decoding: bytes, inputLimit: 16) == message)
        let name = 8 + 1 + 4  // request id, kind, the name's length, then the name's six bytes
        bytes.replaceSubrange((name + offset)..<(name + offset + invalid.count), with: invalid)
        #expect(throws: ProtocolError.malformed(offset: 9, "string is not UTF-8")) { try ExecuteMessage(decoding: bytes, inputLimit: 16) }
    }

    @Test func anEmptyBodyEncodesToNothing() {
        #expect([UInt8]().encodedCount == 0)
        #expect([UInt8]().encoded() == [])
        #expect([UInt8]([1, 2, 3]).encoded() == [1, 2, 3])
    }
}
