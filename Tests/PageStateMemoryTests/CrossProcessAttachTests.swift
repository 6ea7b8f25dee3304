import Foundation
import PageState
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Starts `pagestate-test-helper` (built beside the test bundle) with `socket` as its descriptor 3.
func spawnTestHelper(socket: FileDescriptor) throws -> pid_t {
    let directory = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        .deletingLastPathComponent()
    let helper = directory.appendingPathComponent("pagestate-test-helper").path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, socket.rawValue, 3)
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(helper), nil]
    defer { argv.forEach { free($0) } }
    let rc = posix_spawn(&pid, helper, &actions, nil, argv, environ)
    guard rc == 0 else { throw Errno(rawValue: rc) }
    return pid
}

func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}

@Suite struct CrossProcessAttachTests {
    @Test func anotherProcessReadsIdenticalBytes() throws {
        let pages = try TestPages()
        var delta = PageDelta()
        var generator = SystemRandomNumberGenerator()
        for index in (0..<300).map({ _ in PageIndex.random(in: 0..<100_000, using: &generator) }) {
            delta[index] = try pages.allocator.allocate(copying: (0..<Page.size).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        let (mine, theirs) = try FileDescriptor.socketPair()
        defer { try? mine.close() }
        let pid = try spawnTestHelper(socket: theirs)
        try theirs.close()
        let description = pages.allocator.describe()
        try mine.send(PageListMessage(describing: delta, in: pages.allocator).encoded(), descriptors: [description.descriptor])
        try mine.send([0], descriptors: [description.descriptor])
        let reply = String(decoding: try mine.receive(maximumLength: 1 << 20).bytes, as: UTF8.self)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let expected = delta.map { "\($0.index) \($0.page.withUnsafeBytes(fnv1a))" }.joined(separator: "\n")
        #expect(reply == expected)
        #expect(status == 0)
    }
}
