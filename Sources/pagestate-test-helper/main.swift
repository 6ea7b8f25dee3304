// A second process for the allocator tests. Protocol on descriptor 3 (a SOCK_SEQPACKET socket):
// receive one PageListMessage with the allocator's descriptor, attach it (twice, to check that the
// same identity yields the same allocator), resolve every location, and reply with one line per
// page, "INDEX HASH" (FNV-1a 64 of the page bytes), or a single "error: ..." line.
import PageState
import SystemPackage

func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}

func serve(_ socket: FileDescriptor) -> String {
    do {
        let message = try socket.receive(maximumLength: 1 << 22, maximumDescriptors: 1)
        guard !message.truncated, message.descriptors.count == 1 else { return "error: malformed request" }
        let list = try PageListMessage(decoding: message.bytes)
        let description = AllocatorDescription(descriptor: message.descriptors[0], identity: list.identity, length: list.length)
        let allocator = try PageAllocator.attach(description)
        let duplicate = try socket.receive(maximumLength: 64, maximumDescriptors: 1)
        let again = try PageAllocator.attach(
            AllocatorDescription(descriptor: duplicate.descriptors[0], identity: list.identity, length: list.length))
        guard again === allocator else { return "error: second attach yielded another allocator" }
        let delta = try allocator.resolve(list.locations)
        return delta.map { "\($0.index) \($0.page.withUnsafeBytes(fnv1a))" }.joined(separator: "\n")
    } catch {
        return "error: \(error)"
    }
}

let socket = FileDescriptor(rawValue: 3)
try socket.send(Array(serve(socket).utf8))
