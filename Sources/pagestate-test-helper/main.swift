// A second process for the tests.
//
// `fault-outside-tracked-region` / `fault-without-tracker`: writes to an inaccessible page with (or
// without) a protection-fault tracker installed elsewhere, which must kill the process either way.
//
// `tracked-writes`: in this quiet, single-threaded process, writes of every kind to armed pages
// (the process's own, a system call's, another thread's) must each be collected although
// collects with no page fault since arming skip the page-table walk; prints one line per step.
// `tracked-writes-one-thread`: the same counting only this thread's faults, without the other thread.
//
// `retrack-beside-child`: a tracker is dropped while a forked child (not exec'd) holds a copy of
// every descriptor, and a new tracker takes over the same pages; prints the pages it collects.
//
// No arguments: the allocator test. Protocol on descriptor 3 (a SOCK_SEQPACKET socket):
// receive one PageListMessage with the allocator's descriptor, attach it (twice, to check that the
// same identity yields the same allocator), resolve every location, and reply with one line per
// page, "INDEX HASH" (FNV-1a 64 of the page bytes), or a single "error: ..." line.
import Glibc
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

/// Faults on a PROT_NONE page, optionally while a tracker watches another region.
func faultOutsideTrackedRegions(withTracker: Bool, report: FileDescriptor) throws -> Never {
    let tracked = try mapMemory(length: 4 * Page.size, protection: [.read, .write], flags: [.private, .anonymous])
    let tracker = withTracker ? try ProtectionFaultTracker(address: tracked, pages: 4, capacity: 4) : nil
    tracked.storeBytes(of: 1, as: UInt8.self)  // a tracked write: recorded, survives
    if tracker != nil { try report.send(Array("tracker installed\n".utf8)) }
    let forbidden = try mapMemory(length: Page.size, protection: .none, flags: [.private, .anonymous])
    forbidden.storeBytes(of: 1, as: UInt8.self)
    withExtendedLifetime(tracker) {}
    fatalError("the write to an inaccessible page did not fault")
}

/// Each step: "NAME skipped=WALKS_SKIPPED dirty=INDICES". The steps run three times and only the
/// last round is reported: the first two fault in the bookkeeping's allocations and every code page
/// on the way, including the path from one round to the next (freeing the previous round's lines),
/// whose page faults would otherwise stop a quiet step from skipping.
func trackedWrites(faultScope: PageFaultScope, report: FileDescriptor) throws {
    var map = PageMap(allocator: try PageAllocator(options: .init()))
    map.grow(toPages: 16)
    let memory = try MappedMemory(showing: map, capacityInPages: 16)
    memory.bytes.initializeMemory(as: UInt8.self, repeating: 1)  // populated, as after earlier executions
    let tracker = try AsyncWriteProtectTracker(address: memory.address, pages: 16, faultScope: faultScope)
    let (readEnd, writeEnd) = try FileDescriptor.pipe()
    var lines: [String] = []
    lines.reserveCapacity(32)
    /// `countRead`: when the step reads the fault count it passes to `collect` (nil: `collect` reads its own).
    func step(_ name: String, rearm: Bool = true, countRead: CountRead? = nil, _ write: () throws -> Void) throws {
        let skippedBefore = tracker.walksSkipped
        let countBefore = countRead == .beforeTheWrite ? try pageFaults(of: faultScope) : nil
        try write()
        let count = countRead == .afterTheWrite ? try pageFaults(of: faultScope) : countBefore
        let dirty = try tracker.collect(faultsAfterLastWrite: count)
        lines.append("\(name) skipped=\(tracker.walksSkipped - skippedBefore) dirty=\(dirty.indices)")
        if rearm && dirty.count > 0 { try tracker.rearm(dirty) }
    }
    for _ in 0..<3 {
        lines.removeAll(keepingCapacity: true)
        try step("quiet") {}
        try step("own", rearm: false) { memory.bytes[3 * Page.size] &+= 1 }
        try step("again") { memory.bytes[3 * Page.size] &+= 1 }  // still writable: no fault this time
        try step("quiet-after-rearm") {}
        try step("then-protect") {  // as growth does: arming new pages must not hide the write
            memory.bytes[2 * Page.size] &+= 1
            try tracker.protect(12..<16)
        }
        try step("syscall") {
            _ = try writeEnd.writeAll([UInt8](repeating: 9, count: 4))
            _ = try readEnd.read(into: UnsafeMutableRawBufferPointer(rebasing: memory.bytes[(5 * Page.size)..<(5 * Page.size + 4)]))
        }
        // A count read once after the last write may serve several trackers (a guest's two memories)…
        try step("count-after-write", countRead: .afterTheWrite) { memory.bytes[4 * Page.size] &+= 1 }
        // …but one read before a write hides it; the next collect that reads its own finds it.
        try step("count-before-write", countRead: .beforeTheWrite) { memory.bytes[6 * Page.size] &+= 1 }
        try step("own-count-again") {}
        guard faultScope == .process else { continue }  // another thread's faults are not this thread's
        try step("thread") {
            // Joined, not merely waited for: nothing of it runs on into the next round's steps.
            let address = UInt(bitPattern: memory.address + 7 * Page.size)
            try BackgroundThread(name: "writer", policy: .normal) {
                UnsafeMutablePointer<UInt8>(bitPattern: address)!.pointee &+= 1
            }.join()
        }
    }
    try report.writeAll(Array((lines.joined(separator: "\n") + "\n").utf8))
}

/// When a `trackedWrites` step reads the fault count it hands to `collect`.
enum CountRead { case beforeTheWrite, afterTheWrite }

/// A second tracker of the same pages, created while a child forked after the first still holds
/// copies of the process's descriptors (as a child of `posix_spawn` does until it execs).
func retrackBesideChild(report: FileDescriptor) throws {
    var map = PageMap(allocator: try PageAllocator(options: .init()))
    map.grow(toPages: 8)
    let memory = try MappedMemory(showing: map, capacityInPages: 8)
    let (readEnd, writeEnd) = try FileDescriptor.pipe()
    /// Forks while a first tracker is alive; the tracker is gone when this returns.
    func forkBesideFirstTracker() throws -> pid_t {
        let first = try AsyncWriteProtectTracker(address: memory.address, pages: 8)
        defer { withExtendedLifetime(first) {} }
        return fork()  // this process has one thread
    }
    let child = try forkBesideFirstTracker()
    guard child >= 0 else { throw Errno(rawValue: errno) }  // no child: the test would prove nothing
    if child == 0 {
        close(writeEnd.rawValue)
        var byte: UInt8 = 0
        _ = read(readEnd.rawValue, &byte, 1)  // until the parent closes its end
        _exit(0)
    }
    try readEnd.close()
    let line: String
    do {
        let second = try AsyncWriteProtectTracker(address: memory.address, pages: 8)
        memory.bytes[5 * Page.size] = 1
        line = "dirty=\(try second.collect().indices)"
    } catch {
        line = "error: \(error)"
    }
    try writeEnd.close()
    var status: Int32 = 0
    waitpid(child, &status, 0)
    try report.writeAll(Array((line + "\n").utf8))
}

let socket = FileDescriptor(rawValue: 3)
switch CommandLine.arguments.dropFirst().first {
case "fault-outside-tracked-region": try faultOutsideTrackedRegions(withTracker: true, report: socket)
case "fault-without-tracker": try faultOutsideTrackedRegions(withTracker: false, report: socket)
case "tracked-writes": try trackedWrites(faultScope: .process, report: socket)
case "tracked-writes-one-thread": try trackedWrites(faultScope: .callingThread, report: socket)
case "retrack-beside-child": try retrackBesideChild(report: socket)
default: try socket.send(Array(serve(socket).utf8))
}
