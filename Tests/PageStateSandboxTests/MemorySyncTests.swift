@testable import PageStateSandbox
import PageState
import Testing

@Suite("Memory sync: what a worker is sent")
struct MemorySyncTests {
    @Test("a worker is sent a full image first, then only the pages that changed since the version it holds, then nothing")
    func onlyChangedPagesAreSent() throws {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = 1
        let launcher = Launcher(configuration: configuration)
        defer { launcher.shutDown() }
        let worker = try spawnWorker(from: launcher)
        defer { worker.terminate() }
        let guest = try Guest(id: 1, heapCapacityInPages: 64, stableCapacityInPages: 16)
        try guest.modify { heap, _ in
            heap.grow(toPages: 8)
            for page in UInt64(0)..<8 { try heap.write([UInt8(page + 1)], at: page * 4096) }
        }
        func plan() throws -> MemorySync {
            let (heap, stable) = guest.versions
            var sync = try MemorySync(worker: worker, heap: heap, heapCapacity: 64, stable: stable, stableCapacity: 16)
            sync.close()
            return sync
        }
        func shown() { (worker.heldHeap, worker.heldStable) = guest.versions }  // as after an execution the worker ran

        guard case .image(8, 64, _, let pages) = try plan().heap else { Issue.record("a new worker gets an image"); return }
        #expect(pages.count == 8)
        shown()
        try guest.modify { heap, _ in try heap.write([99], at: 5 * 4096 + 7) }
        guard case .changes(8, let changed) = try plan().heap else { Issue.record("then the changes"); return }
        #expect(changed.map(\.index) == [5], "only the page written since")
        #expect(try plan().stable == .unchanged)
        shown()
        #expect(try plan().heap == .unchanged)
        #expect(try plan().stable == .unchanged)
    }
}
