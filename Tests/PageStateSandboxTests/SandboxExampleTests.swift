@testable import PageStateSandbox
import Foundation
import PageState
import SystemPackage
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Sandbox pool: examples")
struct SandboxExampleTests {
    @Test("updates commit into the guest, queries leave no trace, state persists across executions")
    func counterAndKeyValue() throws {
        let pool = makePool { $0.spinBeforeSleeping = .zero }  // the sleeping path (other tests spin first)
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 1024, stableCapacityInPages: 1024)
        for expected in UInt64(1)...3 {
            let outcome = try pool.execute(guest, request("counter.increment"))
            #expect(u64(outcome.output) == expected)
        }
        #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 3)
        #expect(try pool.execute(guest, request("kv.put", putInput("alpha", "one"))).output == [1])
        #expect(try pool.execute(guest, request("kv.get", Array("alpha".utf8), kind: .query)).output == Array("one".utf8))
        #expect(u64(guest.heap.page(0)) == 3)
        let statistics = pool.statistics
        #expect(statistics.spawned == 1)
        #expect(statistics.executions == 6)
        #expect(statistics.liveWorkers == 1)
        // Latencies: one spawn and six executions recorded (each under the test's 10 s timeout).
        #expect((1..<10_000_000).contains(statistics.spawnP50Microseconds) && statistics.spawnP99Microseconds == statistics.spawnP50Microseconds)
        #expect((1..<10_000_000).contains(statistics.executionP50Microseconds))
        #expect((statistics.executionP50Microseconds..<10_000_000).contains(statistics.executionP99Microseconds))
    }

    @Test("large updates write into result files prepared in the background; smaller, larger and equal results all match in-process")
    func preparedResultFiles() throws {
        try withPoolAndReference(heapPages: 4096) { pool, local, twins in
            // Each file is prepared for the previous result's size: 600 → 300 (punched), 300 → 900 (grown), ...
            for (step, count) in [600, 300, 900, 900, 260].enumerated() {
                try expectSameAsInProcess(pool, local, twins, pagesWrite(count, seed: UInt64(step), heapPages: 4096))
                usleep(50_000)  // time to prepare the next file
            }
            #expect(pool.statistics.preparedResultFiles >= 1)
        }
    }
}

@Suite("Sandbox pool: lifecycle")
struct SandboxLifecycleTests {
    @Test("a new guest gets a ready worker, which is replaced; the statistics count ready workers with the spares; shutDown terminates them")
    func newGuestsTakeReadyWorkers() throws {
        let pool = makePool { $0.readyWorkers = 2; $0.spareWorkers = 4 }
        let guests = try (1...3).map { try Guest(id: $0, heapCapacityInPages: 16, stableCapacityInPages: 16) }
        try pool.warmUp(guests[0])  // no ready worker yet: spawned from the launcher; the thread is woken after it
        #expect(waitUntil { pool.readyWorkerProcessIDs.count == 2 }, "the thread made two spares ready")
        let launcherSpares = pool.statistics.spareWorkers - pool.readyWorkerProcessIDs.count
        #expect((2...4).contains(launcherSpares), "the statistics count the 2 ready workers with the launcher's spares (2 of 4 left, or refilled)")
        let ready = pool.readyWorkerProcessIDs
        _ = try pool.execute(guests[1], request("counter.increment"))
        #expect(pool.workerProcessID(of: guests[1]) == ready[0], "the oldest ready worker")
        try pool.warmUp(guests[2])
        #expect(pool.workerProcessID(of: guests[2]) == ready[1])
        #expect(waitUntil { pool.readyWorkerProcessIDs.count == 2 }, "both replaced")
        #expect(u64(try pool.execute(guests[1], request("counter.increment")).output) == 2)
        let replacements = pool.readyWorkerProcessIDs
        #expect(Set(replacements).isDisjoint(with: ready))
        let descriptors = try replacements.map { try FileDescriptor.processDescriptor($0) }
        pool.shutDown()
        for descriptor in descriptors {
            #expect(try descriptor.waitReadable(timeoutMilliseconds: 5000), "the ready worker was terminated")
            try descriptor.close()
        }
        #expect(pool.readyWorkerProcessIDs.isEmpty)
    }

    @Test("a killed launcher is restarted at the next spawn; guests whose workers died with it carry on")
    func launcherRestart() throws {
        let pool = makePool()
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 16, stableCapacityInPages: 16)
        _ = try pool.execute(guest, request("counter.increment"))
        let launcher = try #require(pool.launcherProcessID)
        kill(launcher.rawValue, SIGKILL)
        let worker = try #require(pool.workerProcessID(of: guest))
        let workerDescriptor = try FileDescriptor.processDescriptor(worker)
        #expect(try workerDescriptor.waitReadable(timeoutMilliseconds: 5000), "PDEATHSIG took the worker with its launcher")
        try workerDescriptor.close()
        #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 2)
        #expect(pool.launcherProcessID != launcher)
        #expect(pool.statistics.launcherRestarts == 1)
    }

    @Test("a launcher that stops answering is replaced after the spawn timeout; its guests carry on", .timeLimit(.minutes(1)))
    func stoppedLauncher() throws {
        let pool = makePool { configuration in
            configuration.spawnTimeout = .seconds(1)
            configuration.readyWorkers = 0
            configuration.spareWorkers = 1
        }
        defer { pool.shutDown() }
        let first = try Guest(id: 1, heapCapacityInPages: 16, stableCapacityInPages: 16)
        _ = try pool.execute(first, request("counter.increment"))
        let launcher = try #require(pool.launcherProcessID)
        let launcherDescriptor = try FileDescriptor.processDescriptor(launcher)
        defer { try? launcherDescriptor.close() }
        let firstWorker = try #require(pool.workerProcessID(of: first))
        #expect(kill(launcher.rawValue, SIGSTOP) == 0)
        // New guests take the spare in hand, if any; then one waits for a fork the stopped launcher
        // does not make, until the spawn timeout, and the pool replaces the launcher (a busy machine
        // may make the new one miss its first timeout too: then it is replaced again).
        for id in UInt64(2)...4 {
            let guest = try Guest(id: id, heapCapacityInPages: 16, stableCapacityInPages: 16)
            #expect(u64(try pool.execute(guest, request("counter.increment", guest: id)).output) == 1)
        }
        #expect(pool.statistics.launcherRestarts >= 1)
        #expect(pool.launcherProcessID != launcher)
        #expect(try launcherDescriptor.waitReadable(timeoutMilliseconds: 0), "the stopped launcher was killed")
        // The first guest's worker died with its launcher (PDEATHSIG): its next execution gets a new one.
        #expect(u64(try pool.execute(first, request("counter.increment")).output) == 2)
        #expect(pool.workerProcessID(of: first) != firstWorker)
    }

    @Test("a worker that ran a guest is confined: no new privileges, a seccomp filter, its resource limits, none of its launcher's descriptors")
    func workersAreConfined() throws {
        let pool = makePool { configuration in
            configuration.workerAddressSpaceBytes = 3 << 30
            configuration.workerOpenFiles = 200
        }
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 16, stableCapacityInPages: 16)
        _ = try pool.execute(guest, request("counter.increment"))
        let worker = try #require(pool.workerProcessID(of: guest)).rawValue
        let launcher = try #require(pool.launcherProcessID).rawValue
        let status = try readProcFile(FilePath("/proc/\(worker)/status")).split(separator: "\n")
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(status.contains("Seccomp:\t2"), "a filter is loaded (mode 2)")
        let limits = try readProcFile(FilePath("/proc/\(worker)/limits")).split(separator: "\n")
        func limit(_ name: String) -> [Substring] {
            limits.first { $0.hasPrefix(name) }.map { $0.dropFirst(name.count).split(separator: " ").prefix(2).map { $0 } } ?? []
        }
        #expect(limit("Max address space") == ["\(3 << 30)", "\(3 << 30)"])
        #expect(limit("Max open files") == ["200", "200"])
        #expect(limit("Max core file size") == ["0", "0"])
        // Descriptors from 3 on: the worker's own (its socket, its guest's files), none of the launcher's
        // files or sockets (compared by device and inode; anonymous inodes, shared by every object of
        // their kind, are left out).
        func files(of pid: pid_t) throws -> Set<[UInt64]> {
            let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { Int($0) }.filter { $0 >= 3 }
            return Set(descriptors.compactMap { descriptor -> [UInt64]? in
                let path = "/proc/\(pid)/fd/\(descriptor)"
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path), !target.hasPrefix("anon_inode:") else { return nil }
                var status = stat()
                return stat(path, &status) == 0 ? [UInt64(status.st_dev), UInt64(status.st_ino)] : nil
            })
        }
        let launcherFiles = try files(of: launcher)
        #expect(!launcherFiles.isEmpty)
        #expect(try files(of: worker).isDisjoint(with: launcherFiles))
    }

    @Test("a worker killed while idle is replaced within the next execution; one that dies running a request is not run again")
    func deadWorkers() throws {
        let pool = makePool()
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 16, stableCapacityInPages: 16)
        _ = try pool.execute(guest, request("counter.increment"))
        let worker = try #require(pool.workerProcessID(of: guest))
        let process = try FileDescriptor.processDescriptor(worker)
        kill(worker.rawValue, SIGKILL)
        #expect(try process.waitReadable(timeoutMilliseconds: 5000))
        try process.close()
        #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 2)
        #expect(pool.workerProcessID(of: guest) != worker)
        #expect((pool.statistics.spawned, pool.statistics.discarded, pool.statistics.executions) == (2, 1, 2))

        #expect(throws: ExecutionError.crashed(signal: SIGSEGV)) { try pool.execute(guest, request("hostile.segfault")) }
        #expect((pool.statistics.spawned, pool.statistics.discarded, pool.statistics.executions) == (2, 2, 3))
        #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 2)
    }

    @Test("idle workers are terminated, the least recently used is evicted at the live maximum, and the RSS budget evicts")
    func eviction() throws {
        let pool = makePool { configuration in
            configuration.idleTimeout = .seconds(2)  // well above the time three executions take under load
            configuration.maximumLiveWorkers = 2
        }
        defer { pool.shutDown() }
        let guests = try (1...3).map { try Guest(id: UInt64($0), heapCapacityInPages: 16, stableCapacityInPages: 16) }
        for guest in guests { _ = try pool.execute(guest, request("counter.increment", guest: guest.id)) }
        #expect(pool.statistics.liveWorkers == 2)
        #expect(pool.workerIndexCapacity >= 8, "the index was made for 4x the live maximum")
        #expect(pool.statistics.evictedLeastRecentlyUsed == 1)
        #expect(pool.workerProcessID(of: guests[0]) == nil, "the least recently used guest lost its worker")
        usleep(2_600_000)
        pool.maintain()
        #expect(pool.statistics.liveWorkers == 0)
        #expect(pool.statistics.evictedIdle >= 2)
        // Evicted guests transparently get new workers; their state is the host's.
        for guest in guests { #expect(u64(try pool.execute(guest, request("counter.increment", guest: guest.id)).output) == 2) }

        let tight = makePool { $0.rssBudgetBytes = 1 }
        defer { tight.shutDown() }
        _ = try tight.execute(guests[0], request("counter.get", kind: .query))
        tight.maintain()
        #expect(tight.statistics.evictedForMemory == 1)
        #expect(tight.statistics.liveWorkers == 0)
    }

    @Test("over the RSS budget the least recently used idle workers are evicted, oldest first, until the rest fit")
    func residentBudgetEvictsLeastRecentlyUsed() throws {
        let budget: UInt64 = 12 << 20
        let pool = makePool { $0.rssBudgetBytes = budget }
        defer { pool.shutDown() }
        // Used in this order: a small worker, one that maps 16 MiB of its guest's pages, a small one.
        let guests = try (1...3).map { try Guest(id: UInt64($0), heapCapacityInPages: 4096, stableCapacityInPages: 16) }
        _ = try pool.execute(guests[0], request("counter.increment", guest: 1))
        var write = pagesWrite(4096, seed: 1, heapPages: 4096)
        write.system = SystemData(guestID: 2, caller: 7, height: 3, time: 11)
        _ = try pool.execute(guests[1], write)
        let large = try #require(pool.residentBytes(of: guests[1]))
        _ = try pool.execute(guests[2], request("counter.increment", guest: 3))
        let small = try #require(pool.residentBytes(of: guests[2]))
        try #require(large > budget && 2 * small < budget, "the premise: \(large) and \(small) bytes against \(budget)")
        pool.maintain()  // (the pool's own maintenance may have evicted some already: the outcome is the same)
        // Largest first would have evicted the 16 MiB worker alone; least recently used first evicts the
        // small oldest one, then the large one, and stops: the newest fits.
        #expect(pool.workerProcessID(of: guests[0]) == nil)
        #expect(pool.workerProcessID(of: guests[1]) == nil)
        #expect(pool.workerProcessID(of: guests[2]) != nil)
        #expect(pool.statistics.evictedForMemory == 2)
    }

    @Test("warmUp leaves a new worker idle and most recently used, and marks an existing one most recently used")
    func warmUpOrder() throws {
        let pool = makePool { $0.maximumLiveWorkers = 2 }
        defer { pool.shutDown() }
        let guests = try (1...3).map { try Guest(id: UInt64($0), heapCapacityInPages: 16, stableCapacityInPages: 16) }
        try pool.warmUp(guests[0])
        try pool.warmUp(guests[1])
        try pool.warmUp(guests[0])  // guest 2's worker is now the least recently used
        try pool.warmUp(guests[2])
        #expect((pool.statistics.spawned, pool.statistics.evictedLeastRecentlyUsed, pool.statistics.liveWorkers) == (3, 1, 2))
        #expect(pool.workerProcessID(of: guests[1]) == nil)
        let warmed = try #require(pool.workerProcessID(of: guests[2]))
        pool.evict(guests[2])  // only an idle worker can be evicted
        #expect(pool.workerProcessID(of: guests[2]) == nil, "worker \(warmed) was left busy")
        #expect(u64(try pool.execute(guests[0], request("counter.increment", guest: guests[0].id)).output) == 1)
    }

    @Test("executions of different guests run in parallel, those of one guest are serialized")
    func parallelGuests() async throws {
        let pool = makePool()
        defer { pool.shutDown() }
        let guests = try (1...4).map { try Guest(id: UInt64($0), heapCapacityInPages: 16, stableCapacityInPages: 16) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for guest in guests {
                for _ in 0..<2 {  // two tasks per guest race on its counter
                    group.addTask { for _ in 0..<10 { _ = try pool.execute(guest, request("counter.increment", guest: guest.id)) } }
                }
            }
            try await group.waitForAll()
        }
        for guest in guests { #expect(u64(guest.heap.page(0)) == 20) }
    }

    @Test("executions of different guests overlap: each is inside its host call while the other is")
    func differentGuestsOverlap() throws {
        // Each guest's host call waits (up to 5 s, within the execution timeout) until both guests are
        // in one; were executions of different guests run one at a time, the first would wait out the
        // limit and answer 0.
        let inHostCall = Mutex(0)
        let pool = makePool(hostCall: { _, _ in
            inHostCall.withLock { $0 += 1 }
            let deadline = ContinuousClock.now + .seconds(5)
            while inHostCall.withLock({ $0 }) < 2, ContinuousClock.now < deadline { usleep(1000) }
            return [inHostCall.withLock { $0 } >= 2 ? 1 : 0]
        })
        defer { pool.shutDown() }
        let guests = try (1...2).map { try Guest(id: UInt64($0), heapCapacityInPages: 16, stableCapacityInPages: 16) }
        let outputs = Mutex([UInt64: Result<[UInt8], ExecutionError>]())
        let done = DispatchGroup()
        for guest in guests {
            done.enter()
            Thread {
                let output = Result { () throws(ExecutionError) in
                    try pool.execute(guest, request("host.echo", [0], kind: .query, guest: guest.id)).output
                }
                outputs.withLock { $0[guest.id] = output }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(outputs.withLock { $0 } == [1: .success([1]), 2: .success([1])])
    }

    @Test("growth is charged against the allowance and the shared budget, deterministically; host calls and system data work")
    func allowanceBudgetHostCalls() throws {
        let budget = MemoryBudget(pages: 3)
        let pool = makePool(budget: budget)
        defer { pool.shutDown() }
        let guest = try Guest(id: 9, heapCapacityInPages: 512, stableCapacityInPages: 16)
        #expect(throws: ExecutionError.memoryAllowanceExhausted(requestedPages: 1, remainingPages: 0)) {
            try pool.execute(guest, request("counter.increment", allowance: 0))
        }
        #expect(guest.heap.sizeInPages == 0)
        #expect(budget.availablePages == 3)
        #expect(try pool.execute(guest, request("counter.increment", allowance: 2)).grownPages == 1)
        #expect(budget.availablePages == 2, "the unused part of the grant is returned; the page grown stays charged")
        // The key-value table needs 257 pages; the allowance asked for is 1,000, but only 2 remain in the
        // shared budget, so the execution is granted 2.
        #expect(throws: ExecutionError.memoryAllowanceExhausted(requestedPages: 256, remainingPages: 2)) {
            try pool.execute(guest, request("kv.put", putInput("a", "b"), allowance: 1000))
        }
        #expect(budget.availablePages == 2, "a failed execution returns its whole grant")
        #expect(try pool.execute(guest, request("counter.increment", kind: .query, allowance: 0)).grownPages == 0)
        #expect(budget.availablePages == 2, "queries neither take from the budget nor grow")
        #expect(try pool.execute(guest, request("host.echo", [1, 2, 3], kind: .query)).output == [3, 2, 1])
        let system = try pool.execute(guest, request("system.data", kind: .query, guest: 9)).output
        #expect(system.count == 32 && u64(system) == 9 && u64(Array(system[8...])) == 7)
        #expect(throws: ExecutionError.trapped("failure requested")) { try pool.execute(guest, request("fail")) }
        #expect(throws: ExecutionError.unknownEntryPoint("nope")) { try pool.execute(guest, request("nope")) }
        #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 1)
    }
}

@Suite("Sandbox pool: many small updates")
struct ManySmallUpdatesTests {
    @Test("a guest whose pages come from hundreds of small updates keeps working, also after its worker is evicted")
    func hundredsOfResultFiles() throws {
        try withPoolAndReference(heapPages: 8192) { pool, local, twins in
            for step in 0..<400 {
                // Compaction keeps the result files bounded; the worker lets go of those it no longer uses.
                if let pid = pool.workerProcessID(of: twins.0) {
                    let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid.rawValue)/fd").count
                    // + 8: dead result files the worker lets go of once idle (after a commit, at most 8 wait).
                    #expect(descriptors <= pool.configuration.maximumResultFilesPerGuest + 16 + 8, "step \(step)")
                }
                let write = pagesWrite(1, seed: UInt64(step), heapPages: 8192)
                #expect(try pool.execute(twins.0, write).output == (try local.execute(twins.1, write)).output)
                if step == 300 { pool.evict(twins.0) }
            }
            pool.evict(twins.0)
            _ = try pool.execute(twins.0, request("counter.get", kind: .query))
            #expect(firstDifference(twins.0.heap, twins.1.heap) == nil)
        }
    }

    @Test("a worker lets go of dead result files once it is idle, and of all but 8 of them while busy")
    func deadResultFilesWaitForIdleness() throws {
        try withPoolAndReference(heapPages: 1) { pool, local, twins in
            // Each update rewrites the only page: the previous update's result file is dead at once.
            for step in 0..<20 { try expectSameAsInProcess(pool, local, twins, pagesWrite(1, seed: UInt64(step), heapPages: 1)) }
            let worker = try #require(pool.workerProcessID(of: twins.0))
            let busy = try resultFiles(of: worker)
            #expect((1...9).contains(busy), "the live file and at most 8 dead ones, not \(busy)")
            var idle = busy
            for _ in 0..<300 where idle > 1 {
                usleep(10_000)
                idle = try resultFiles(of: worker)
            }
            #expect(idle == 1, "an idle worker keeps only the file its memory uses")
            try expectSameAsInProcess(pool, local, twins, pagesWrite(1, seed: 99, heapPages: 1))
            #expect(pool.workerProcessID(of: twins.0) == worker)
        }
    }

    @Test("a new worker lets go of the result file it was sent once its own update replaced the file's page")
    func sentFileReplacedByTheWorkersOwnUpdate() throws {
        try withPoolAndReference(heapPages: 1) { pool, local, twins in
            for step in 0..<3 { try expectSameAsInProcess(pool, local, twins, pagesWrite(1, seed: UInt64(step), heapPages: 1)) }
            pool.evict(twins.0)
            // The new worker maps the only page from the last result file, which the host sends it;
            // its update's commit replaces that page: the next execution (memories unchanged) lets go.
            try expectSameAsInProcess(pool, local, twins, pagesWrite(1, seed: 10, heapPages: 1))
            let worker = try #require(pool.workerProcessID(of: twins.0))
            #expect(try resultFiles(of: worker) == 2, "the file it was sent and its own")
            try expectSameAsInProcess(pool, local, twins, pagesWrite(1, seed: 11, heapPages: 1))
            #expect(pool.workerProcessID(of: twins.0) == worker)
            var files = try resultFiles(of: worker)
            for _ in 0..<300 where files > 1 {
                usleep(10_000)
                files = try resultFiles(of: worker)
            }
            #expect(files == 1, "only the file its memory uses, not \(files)")
        }
    }

    /// The sealed result files a worker holds a descriptor of.
    private func resultFiles(of worker: ProcessID) throws -> Int {
        let directory = "/proc/\(worker.rawValue)/fd"
        return try FileManager.default.contentsOfDirectory(atPath: directory).count { name in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(name)"))?.contains("pagestate-result") == true
        }
    }
}
