import Dispatch
import Foundation
import PageStateKernel
import PageStateSandbox
import SystemPackage

/// What `pagestate soak sandbox` observed.
public struct SandboxSoakReport: Codable, Sendable {
    public var executions = 0
    public var spawned = 0
    public var discarded = 0
    public var evicted = 0
    public var descriptorsBefore = 0
    public var descriptorsAfter = 0
    public var childrenBefore = 0
    public var childrenAfter = 0
    /// Processes the launchers still had once every guest's worker was evicted (zombies included):
    /// their spare workers and the pool's ready workers only.
    public var launcherChildrenAfterEviction = 0
    /// Spares the host held or had asked for at that moment, from every launcher, plus the pool's
    /// ready workers (`SandboxPool.Statistics.spareWorkers`).
    public var spareWorkers = 0
    /// Launcher processes at that moment, and the most the pool had (sampled every 100 executions).
    public var launchers = 0
    public var launchersAtMost = 0
    public var failures: [String] = []
}

/// Many executions across guests through one pool — with LRU evictions, worker kills and crashes —
/// checking results against a model and that the host's descriptors and child processes return to
/// their baseline afterwards (no leaks, no zombies).
public enum SandboxSoak {
    /// `workersPerLauncher`: nil for the pool's default.
    public static func run(worker: FilePath, executions: Int, guests: Int = 16, seed: UInt64,
                           workersPerLauncher: Int? = nil) -> SandboxSoakReport {
        var report = SandboxSoakReport()
        startDispatchEventMachinery()
        let descriptorsBefore = openDescriptors()
        report.descriptorsBefore = descriptorsBefore.count
        report.childrenBefore = children(of: getpid()).count
        do {
            try exercise(worker: worker, executions: executions, guests: guests, seed: seed,
                         workersPerLauncher: workersPerLauncher, report: &report)
        } catch {
            report.failures.append("\(error)")
        }
        let descriptorsAfter = openDescriptors()
        report.descriptorsAfter = descriptorsAfter.count
        report.childrenAfter = children(of: getpid()).count
        if report.descriptorsAfter != report.descriptorsBefore {
            let opened = descriptorsAfter.filter { descriptorsBefore[$0.key] != $0.value }.sorted { $0.key < $1.key }
            report.failures.append("descriptors: \(report.descriptorsBefore) before, \(report.descriptorsAfter) after; opened since or reused: \(opened.map { "\($0.key) → \($0.value)" })")
        }
        if report.childrenAfter != report.childrenBefore {
            report.failures.append("child processes: \(report.childrenBefore) before, \(report.childrenAfter) after")
        }
        return report
    }

    private static func exercise(worker: FilePath, executions: Int, guests count: Int, seed: UInt64,
                                 workersPerLauncher: Int?, report: inout SandboxSoakReport) throws {
        var configuration = SandboxConfiguration(workerExecutable: worker)
        if let workersPerLauncher { configuration.workersPerLauncher = workersPerLauncher }
        configuration.maximumLiveWorkers = max(1, count * 3 / 4)  // forces some least-recently-used evictions
        let otherChildren = Set(children(of: getpid()))  // the host's children from now on are the pool's launchers
        let pool = SandboxPool(configuration: configuration, budget: MemoryBudget(pages: 1 << 30))
        defer { pool.shutDown() }
        let guests = try (0..<count).map { try Guest(id: UInt64($0 + 1), heapCapacityInPages: 512, stableCapacityInPages: 64) }
        var counters = [UInt64](repeating: 0, count: count)
        var random = SplitMix64(seed: seed)
        for step in 0..<executions {
            let index = Int(random.next() % UInt64(count))
            let guest = guests[index]
            let system = SystemData(guestID: guest.id, height: UInt64(step))
            if step % 500 == 0, let pid = pool.workerProcessID(of: guest), let process = try? FileDescriptor.processDescriptor(pid) {
                kill(pid.rawValue, SIGKILL)  // behind the pool's back; the next execution must not notice
                _ = try? process.waitReadable(timeoutMilliseconds: 5000)
                try? process.close()
            }
            if step % 500 == 250 {
                do {
                    _ = try pool.execute(guest, ExecutionRequest(entryPoint: "hostile.segfault", kind: .update, system: system))
                    report.failures.append("step \(step): a segfault succeeded")
                } catch {}
            }
            switch random.next() % 100 {
            case 0..<30:
                let outcome = try pool.execute(guest, ExecutionRequest(entryPoint: "counter.get", kind: .query, system: system))
                if value(outcome.output) != counters[index] {
                    report.failures.append("step \(step): guest \(guest.id) counter \(value(outcome.output)), model \(counters[index])")
                }
            default:
                let outcome = try pool.execute(guest, ExecutionRequest(entryPoint: "counter.increment", kind: .update, system: system,
                                                                       memoryAllowancePages: 1))
                counters[index] += 1
                if value(outcome.output) != counters[index] { report.failures.append("step \(step): increment diverged") }
            }
            report.executions += 1
            if step % 100 == 0 { report.launchersAtMost = max(report.launchersAtMost, pool.statistics.launchers) }
        }
        for guest in guests { pool.evict(guest) }
        let deadline = ContinuousClock.now + .seconds(5)
        repeat {
            let launchers = children(of: getpid()).filter { !otherChildren.contains($0) }.compactMap { pid_t($0) }
            report.launchers = launchers.count
            report.launcherChildrenAfterEviction = launchers.reduce(0) { $0 + children(of: $1).count }
            report.spareWorkers = pool.statistics.spareWorkers
        } while report.launcherChildrenAfterEviction != report.spareWorkers && ContinuousClock.now < deadline
            && (usleep(10_000) == 0 || true)
        let sparesAtMost = configuration.spareWorkers * report.launchers + configuration.readyWorkers
        if report.launcherChildrenAfterEviction != report.spareWorkers || report.spareWorkers > sparesAtMost {
            report.failures.append("\(report.launchers) launchers have \(report.launcherChildrenAfterEviction) children after every worker was evicted; the host holds or asked for \(report.spareWorkers) spares and ready workers (at most \(configuration.spareWorkers) per launcher plus \(configuration.readyWorkers) ready)")
        }
        let statistics = pool.statistics
        report.spawned = statistics.spawned
        report.discarded = statistics.discarded
        report.evicted = statistics.evictedLeastRecentlyUsed + statistics.evictedIdle + statistics.evictedForMemory
    }

    /// Runs a Dispatch timer once, so that Dispatch's event machinery (an epoll and an eventfd it
    /// creates once per process, when its first timer runs: the pool's maintenance timer would) is
    /// open before the baseline is counted.
    static func startDispatchEventMachinery() {
        let fired = DispatchSemaphore(value: 0)
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pagestate.soak.baseline"))
        timer.schedule(deadline: .now() + .milliseconds(1))
        timer.setEventHandler { fired.signal() }
        timer.resume()
        fired.wait()
        timer.cancel()
    }

    /// The process's open descriptors and what each refers to, except Dispatch's epolls and timerfds
    /// (it opens and closes timerfds as its timers come and go; PageState opens neither kind). Every
    /// eventfd counts: the pool's event counters are eventfds.
    static func openDescriptors() -> [Int: String] {
        let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int($0) }
        // The listing's own descriptor is closed by the time it is looked up: left out.
        let targets = descriptors.compactMap { descriptor in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")).map { (descriptor, $0) }
        }
        return Dictionary(uniqueKeysWithValues: targets.filter { !["anon_inode:[eventpoll]", "anon_inode:[timerfd]"].contains($0.1) })
    }

    /// The children of every thread of `pid`, zombies included.
    static func children(of pid: pid_t) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task in
            ((try? readProcFile(FilePath("/proc/\(pid)/task/\(task)/children"))) ?? "").split(separator: " ").map(String.init)
        }
    }

    static func value(_ bytes: [UInt8]) -> UInt64 {
        bytes.count == 8 ? bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } : 0
    }
}
