import Foundation
import PageState
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Starts `pagestate-test-helper` (built beside the test bundle) with `socket` as its descriptor 3.
/// The crash mode runs without Swift's backtracer so the signal reaches the parent unchanged.
func spawnTestHelper(socket: FileDescriptor, arguments: [String] = []) throws -> pid_t {
    let directory = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        .deletingLastPathComponent()
    let helper = directory.appendingPathComponent("pagestate-test-helper").path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, socket.rawValue, 3)
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = ([helper] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let environment: [UnsafeMutablePointer<CChar>?] = [strdup("SWIFT_BACKTRACE=enable=no"), nil]
    defer { environment.forEach { free($0) } }
    let rc = posix_spawn(&pid, helper, &actions, nil, argv, environment)
    guard rc == 0 else { throw Errno(rawValue: rc) }
    return pid
}

/// Runs the helper with `arguments` (no socket), returning what it printed and the signal that ended it.
func runTestHelper(_ arguments: [String]) throws -> (output: String, signal: Int32?) {
    let (mine, theirs) = try FileDescriptor.socketPair(datagrams: false)
    defer { try? mine.close() }
    let pid = try spawnTestHelper(socket: theirs, arguments: arguments)
    try theirs.close()
    var output: [UInt8] = []
    while true {
        let chunk = try mine.receive(maximumLength: 4096, maximumDescriptors: 0).bytes
        if chunk.isEmpty { break }
        output += chunk
    }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let signal = status & 0x7f
    return (String(decoding: output, as: UTF8.self), signal == 0 ? nil : signal)
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
