import PageState
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One hostile behaviour and the typed error that must contain it.
struct HostileCase: CustomStringConvertible, Sendable {
    var entryPoint: String
    /// The input, given the pool and the bystander guest.
    var input: @Sendable (SandboxPool, Guest) -> [UInt8] = { _, _ in [] }
    var expected: @Sendable (ExecutionError) -> Bool
    var description: String { entryPoint }

    static func violation(_ entryPoint: String, _ syscall: String,
                          input: @escaping @Sendable (SandboxPool, Guest) -> [UInt8] = { _, _ in [] }) -> HostileCase {
        HostileCase(entryPoint: entryPoint, input: input) { $0 == .policyViolation(syscall: syscall) }
    }

    static let all: [HostileCase] = [
        .violation("hostile.open", "openat"),
        .violation("hostile.socket", "socket"),
        .violation("hostile.execve", "execve"),
        .violation("hostile.fork", "clone"),
        .violation("hostile.userfaultfd", "userfaultfd"),
        .violation("hostile.ptrace", "ptrace") { _, _ in Array("\(getpid())".utf8) },
        .violation("hostile.kill", "kill") { _, _ in Array("\(getpid())".utf8) },  // the host
        .violation("hostile.kill", "kill") { pool, _ in Array("\(pool.launcherProcessID!.rawValue)".utf8) },
        .violation("hostile.kill", "kill") { pool, bystander in Array("\(pool.workerProcessID(of: bystander)!.rawValue)".utf8) },
        .violation("hostile.truncate", "ftruncate"),
        .violation("hostile.map-executable", "mmap"),
        .violation("hostile.make-executable", "mprotect"),
        .violation("hostile.move-mapping", "mremap"),
        .violation("hostile.sigsys-handler", "rt_sigaction"),
        HostileCase(entryPoint: "hostile.write-past-bounds") { $0 == .crashed(signal: SIGSEGV) },
        HostileCase(entryPoint: "hostile.segfault") { $0 == .crashed(signal: SIGSEGV) },
        HostileCase(entryPoint: "hostile.abort") { $0 == .crashed(signal: SIGABRT) },
        HostileCase(entryPoint: "hostile.loop") { if case .timedOut = $0 { true } else { false } },
        // Stopped by RLIMIT_AS (malloc fails, the guest aborts) — or, on a loaded machine, by the timeout first.
        HostileCase(entryPoint: "hostile.allocate") { if case .timedOut = $0 { true } else { $0 == .crashed(signal: SIGABRT) } },
        HostileCase(entryPoint: "hostile.exhaust-descriptors") { if case .workerFailure = $0 { true } else { false } },
        HostileCase(entryPoint: "hostile.foreign-pages") { if case .rejectedPages = $0 { true } else { false } },
        HostileCase(entryPoint: "hostile.malformed-result") { if case .malformedResult = $0 { true } else { false } },
        HostileCase(entryPoint: "hostile.oversized-result", input: { _, _ in Array("\(4 << 20)".utf8) }) {
            if case .malformedResult = $0 { true } else { false }
        },
    ]
}

@Suite("Hostile guests are contained")
struct HostileGuestTests {
    @Test("each hostile behaviour gets its typed error; the host, the launcher and other guests are unaffected",
          arguments: HostileCase.all)
    func contained(_ hostile: HostileCase) throws {
        let pool = makePool { configuration in
            configuration.executionTimeout = .seconds(2)
            configuration.workerAddressSpaceBytes = 1 << 30
            configuration.maximumResultBytes = 1 << 20
        }
        defer { pool.shutDown() }
        let bystander = try Guest(id: 2, heapCapacityInPages: 512, stableCapacityInPages: 64)
        let attacker = try Guest(id: 1, heapCapacityInPages: 512, stableCapacityInPages: 64)
        _ = try pool.execute(bystander, request("kv.put", putInput("k", "v"), guest: 2))
        _ = try pool.execute(attacker, request("counter.increment"))
        let launcher = pool.launcherProcessID
        let bystanderWorker = try #require(pool.workerProcessID(of: bystander))
        _ = try pool.execute(bystander, request("log.append", Array("entry".utf8), guest: 2))  // stable memory too
        let before = (contents(bystander.heap), contents(bystander.stable), contents(attacker.heap), contents(attacker.stable))

        #expect {
            _ = try pool.execute(attacker, request(hostile.entryPoint, hostile.input(pool, bystander)))
        } throws: { error in
            guard let error = error as? ExecutionError else { return false }
            if !hostile.expected(error) { Issue.record("\(hostile.entryPoint): got \(error)") }
            return true
        }
        #expect(pool.launcherProcessID == launcher)
        #expect(kill(launcher!.rawValue, 0) == 0, "the launcher is alive")
        #expect(contents(bystander.heap) == before.0)
        #expect(contents(bystander.stable) == before.1)
        #expect(contents(attacker.heap) == before.2)
        #expect(contents(attacker.stable) == before.3)
        // Both guests go on working (the attacker with a new worker).
        #expect(try pool.execute(bystander, request("kv.get", Array("k".utf8), kind: .query, guest: 2)).output == Array("v".utf8))
        #expect(pool.workerProcessID(of: bystander) == bystanderWorker, "the bystander's worker lived through it and served that query")
        #expect(u64(try pool.execute(attacker, request("counter.increment")).output) == 2)
    }

    @Test("a crash is reported with its signal whether the host learns exits from pidfds or from the launcher",
          arguments: exitReportings, ["hostile.segfault", "hostile.abort"])
    func crashReportedEitherWay(_ exits: WorkerExitReporting, _ entryPoint: String) throws {
        let pool = makePool { $0.exitReporting = exits }
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 64, stableCapacityInPages: 16)
        _ = try pool.execute(guest, request("counter.increment"))
        #expect(throws: ExecutionError.crashed(signal: entryPoint == "hostile.segfault" ? SIGSEGV : SIGABRT)) {
            _ = try pool.execute(guest, request(entryPoint))
        }
        #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 2, "a new worker took over")
    }

    @Test("a guest cannot write or map writable any descriptor it holds, except the worker's own scratch memfd")
    func descriptorsStayReadOnly() throws {
        let pool = makePool()
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 64, stableCapacityInPages: 64)
        _ = try pool.execute(guest, request("counter.increment"))
        _ = try pool.execute(guest, request("log.append", Array("entry".utf8)))
        _ = try pool.execute(guest, request("counter.increment"))  // the worker now holds result files too
        let before = (contents(guest.heap), contents(guest.stable))
        let outcome = try pool.execute(guest, request("hostile.write-descriptors"))
        // The worker's placeholder allocator (a memfd only it uses) is the one writable file: map + write.
        #expect(u64(outcome.output) == 2)
        #expect(contents(guest.heap) == before.0)
        #expect(contents(guest.stable) == before.1)
        pool.evict(guest)
        #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 2)
    }
}
