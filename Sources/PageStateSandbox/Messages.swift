import PageStateMemory

/// Host → worker: bring the memories up to date, then run one execution.
struct ExecuteMessage: WireEncodable {
    var requestID: UInt64
    var request: ExecutionRequest
    /// Files handed over with the message, in the order of its descriptors.
    var files: [FileEntry]
    var heap: MemoryUpdate
    var stable: MemoryUpdate
    /// Microseconds the worker polls for the next message after replying, before it sleeps.
    var spinMicroseconds: UInt32 = 0

    static let maximumEntryPointName = 256
    static let maximumSpinMicroseconds: UInt32 = 10_000
    static let maximumFiles = 250

    func encode<Sink: WireSink>(into writer: inout Sink) {
        writer.append(requestID)
        writer.append(request.kind.rawValue)
        writer.append(string: request.entryPoint)
        writer.append(bytes: request.input)
        writer.append(request.system.guestID)
        writer.append(request.system.caller)
        writer.append(request.system.height)
        writer.append(request.system.time)
        writer.append(request.memoryAllowancePages)
        writer.append(request.dirtyPageLimit)
        writer.append(spinMicroseconds)
        writer.append(UInt64(files.count))
        for file in files { writer.append(file) }
        writer.append(heap)
        writer.append(stable)
    }

    init(requestID: UInt64, request: ExecutionRequest, files: [FileEntry], heap: MemoryUpdate, stable: MemoryUpdate) {
        self.requestID = requestID
        self.request = request
        self.files = files
        self.heap = heap
        self.stable = stable
    }

    init(decoding bytes: [UInt8], inputLimit: Int) throws(ProtocolError) {
        var reader = WireReader(bytes)
        requestID = try reader.read()
        guard let kind = ExecutionKind(rawValue: try reader.read()) else { throw .malformed(offset: 8, "unknown execution kind") }
        let name = try reader.readString(limit: Self.maximumEntryPointName)
        let input = try reader.readBytes(limit: inputLimit)
        let system = SystemData(guestID: try reader.read(), caller: try reader.read(), height: try reader.read(), time: try reader.read())
        request = ExecutionRequest(entryPoint: name, input: input, kind: kind, system: system,
                                  memoryAllowancePages: try reader.read(), dirtyPageLimit: try reader.read())
        spinMicroseconds = min(try reader.read(), Self.maximumSpinMicroseconds)
        let fileCount = try reader.readCount(entrySize: 17, limit: Self.maximumFiles)
        var files: [FileEntry] = []
        for _ in 0..<fileCount { files.append(try reader.readFileEntry()) }
        self.files = files
        heap = try reader.readMemoryUpdate(files: fileCount)
        stable = try reader.readMemoryUpdate(files: fileCount)
        try reader.finish()
    }
}

/// Worker → host: how an execution ended. The changed pages of a successful update are in the
/// sealed result file that travels with the message (none when nothing changed). Every result also
/// lists the allocators the worker let go of (no page of its memories referred to them any more),
/// so that the host sends them again if it needs them.
enum ResultMessage {
    case success(Success)
    case failure(ExecutionError)

    struct Success {
        var output: [UInt8]
        var heapSize: UInt64
        var stableSize: UInt64
        var grownPages: UInt64
        var heapPages: [PageLocation]
        var stablePages: [PageLocation]
    }

    /// Most allocators one result may say were let go of.
    static let maximumForgotten = 1 << 16

    /// The message that carries this result.
    func reply(to requestID: UInt64, forgotten: [UInt64] = []) -> Reply { Reply(requestID: requestID, forgotten: forgotten, result: self) }

    /// A result as it travels: the request it answers and the allocators the worker let go of.
    struct Reply: WireEncodable {
        var requestID: UInt64
        var forgotten: [UInt64]
        var result: ResultMessage

        func encode<Sink: WireSink>(into writer: inout Sink) { result.encode(requestID: requestID, forgotten: forgotten, into: &writer) }
    }

    private func encode<Sink: WireSink>(requestID: UInt64, forgotten: [UInt64], into writer: inout Sink) {
        writer.append(requestID)
        writer.append(UInt64(forgotten.count))
        for identity in forgotten { writer.append(identity) }
        switch self {
        case .success(let success):
            writer.append(UInt8(0))
            writer.append(bytes: success.output)
            writer.append(success.heapSize)
            writer.append(success.stableSize)
            writer.append(success.grownPages)
            Self.append(success.heapPages, to: &writer)
            Self.append(success.stablePages, to: &writer)
        case .failure(let error):
            writer.append(UInt8(1))
            Self.append(error, to: &writer)
        }
    }

    /// A count, then (index, offset, tag) per page: what `readPageList` reads.
    private static func append<Sink: WireSink>(_ pages: [PageLocation], to writer: inout Sink) {
        writer.append(UInt64(pages.count))
        for page in pages { writer.append(page.index); writer.append(page.place.offset); writer.append(page.place.tag) }
    }

    /// Decodes a worker's untrusted reply, enforcing the host's output limit.
    static func decode(_ bytes: [UInt8], outputLimit: Int) throws(ProtocolError)
        -> (requestID: UInt64, forgotten: [UInt64], result: ResultMessage)
    {
        var reader = WireReader(bytes)
        let requestID: UInt64 = try reader.read()
        let forgottenCount = try reader.readCount(entrySize: 8, limit: maximumForgotten)
        var forgotten: [UInt64] = []
        for _ in 0..<forgottenCount { forgotten.append(try reader.read()) }
        let result: ResultMessage
        switch try reader.read(UInt8.self) {
        case 0:
            let output = try reader.readBytes(limit: outputLimit)
            let heapSize: UInt64 = try reader.read()
            let stableSize: UInt64 = try reader.read()
            let grown: UInt64 = try reader.read()
            let heapPages = try readPageList(&reader)
            let stablePages = try readPageList(&reader)
            result = .success(Success(output: output, heapSize: heapSize, stableSize: stableSize, grownPages: grown,
                                      heapPages: heapPages, stablePages: stablePages))
        case 1:
            result = .failure(try decodeError(&reader))
        default:
            throw .malformed(offset: 8, "unknown result status")
        }
        try reader.finish()
        return (requestID, forgotten, result)
    }

    /// A count, then that many (index, offset, tag) entries in ascending index order.
    private static func readPageList(_ reader: inout WireReader) throws(ProtocolError) -> [PageLocation] {
        let start = reader.position
        let count = try reader.readCount(entrySize: 20, limit: PageListMessage.maximumEntries)
        var pages: [PageLocation] = []
        pages.reserveCapacity(count)
        for _ in 0..<count {
            let page = PageLocation(index: try reader.read(), place: .init(offset: try reader.read(), tag: try reader.read()))
            if let last = pages.last, last.index >= page.index { throw .malformed(offset: start, "page indices not ascending") }
            pages.append(page)
        }
        return pages
    }

    /// Only the errors a worker can legitimately report travel; anything else is malformed.
    private static func append<Sink: WireSink>(_ error: ExecutionError, to writer: inout Sink) {
        switch error {
        case .trapped(let message): writer.append(UInt8(1)); writer.append(string: message)
        case .unknownEntryPoint(let name): writer.append(UInt8(2)); writer.append(string: name)
        case .memoryAllowanceExhausted(let requested, let remaining): writer.append(UInt8(3)); writer.append(requested); writer.append(remaining)
        case .capacityExceeded(let memory, let requested, let capacity):
            writer.append(UInt8(4)); writer.append(string: memory); writer.append(requested); writer.append(capacity)
        case .outOfBounds(let memory, let offset, let count, let size):
            writer.append(UInt8(5)); writer.append(string: memory); writer.append(offset); writer.append(count); writer.append(size)
        case .dirtyPageLimitExceeded(let limit, let written): writer.append(UInt8(6)); writer.append(limit); writer.append(written)
        case .workerFailure(let reason): writer.append(UInt8(7)); writer.append(string: reason)
        default: writer.append(UInt8(7)); writer.append(string: error.description)
        }
    }

    private static let maximumMessage = 4096

    private static func decodeError(_ reader: inout WireReader) throws(ProtocolError) -> ExecutionError {
        let start = reader.position
        switch try reader.read(UInt8.self) {
        case 1: return .trapped(try reader.readString(limit: maximumMessage))
        case 2: return .unknownEntryPoint(try reader.readString(limit: maximumMessage))
        case 3: return .memoryAllowanceExhausted(requestedPages: try reader.read(), remainingPages: try reader.read())
        case 4: return .capacityExceeded(memory: try reader.readString(limit: 64), requestedPages: try reader.read(), capacityPages: try reader.read())
        case 5: return .outOfBounds(memory: try reader.readString(limit: 64), offset: try reader.read(), count: try reader.read(), size: try reader.read())
        case 6: return .dirtyPageLimitExceeded(limit: try reader.read(), written: try reader.read())
        case 7: return .workerFailure(try reader.readString(limit: maximumMessage))
        default: throw .malformed(offset: start, "unknown error code")
        }
    }
}

/// A guest's request to the host (worker → host) and the host's answer (host → worker).
struct HostCallMessage: WireEncodable {
    var callID: UInt64
    /// For replies: whether the host's handler succeeded (`bytes` is then its answer, else a message).
    var succeeded: Bool
    var bytes: [UInt8]

    func encode<Sink: WireSink>(into writer: inout Sink) {
        writer.append(callID)
        writer.append(UInt8(succeeded ? 1 : 0))
        writer.append(bytes: bytes)
    }

    init(callID: UInt64, succeeded: Bool, bytes: [UInt8]) {
        self.callID = callID
        self.succeeded = succeeded
        self.bytes = bytes
    }

    init(decoding raw: [UInt8], limit: Int) throws(ProtocolError) {
        var reader = WireReader(raw)
        callID = try reader.read()
        succeeded = try reader.read(UInt8.self) == 1
        bytes = try reader.readBytes(limit: limit)
        try reader.finish()
    }
}
