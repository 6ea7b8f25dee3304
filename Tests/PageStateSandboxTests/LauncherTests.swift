@testable import PageStateSandbox
import Foundation
import Glibc
import PageStateKernel
import SystemPackage
import Testing

@Suite("Launcher: spares and exit reports")
struct LauncherTests {
    func makeLauncher(spares: Int) -> Launcher {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = spares
        return Launcher(configuration: configuration)
    }

    /// The launcher's children (its workers, spares included), polled until `done` holds or 5 s pass.
    func children(of launcher: Launcher, until done: ([pid_t]) -> Bool) throws -> [pid_t] {
        let pid = try #require(launcher.processID).rawValue
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let listed = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
            let children = listed.split(separator: " ").compactMap { pid_t($0) }
            if done(children) || ContinuousClock.now > deadline { return children }
            usleep(2_000)
        }
    }

    @Test("after a spawn the host holds its spares; a spare killed while waiting is skipped by the next spawn")
    func sparesAreHeldAndDeadOnesSkipped() throws {
        let launcher = makeLauncher(spares: 2)
        defer { launcher.shutDown() }
        let first = try WorkerProcess(guestID: 1, launcher: launcher, timeout: .seconds(5))
        defer { first.terminate(launcher: launcher) }
        let spares = try children(of: launcher) { $0.count == 3 }.filter { $0 != first.pid.rawValue }
        #expect(spares.count == 2, "the spares asked for after the spawn")
        for spare in spares {
            let descriptor = try FileDescriptor.processDescriptor(ProcessID(rawValue: spare))
            kill(spare, SIGKILL)
            _ = try descriptor.waitReadable(timeoutMilliseconds: 5000)
            try descriptor.close()
        }
        let second = try WorkerProcess(guestID: 2, launcher: launcher, timeout: .seconds(5))
        defer { second.terminate(launcher: launcher) }
        #expect(!spares.contains(second.pid.rawValue))
        #expect(kill(second.pid.rawValue, 0) == 0, "the new worker is alive")
    }

    @Test("exit reports of workers discarded without asking are dropped, not kept")
    func discardedExitsAreNotKept() throws {
        let launcher = makeLauncher(spares: 1)
        defer { launcher.shutDown() }
        for guest in 0..<40 {
            let worker = try WorkerProcess(guestID: UInt64(guest), launcher: launcher, timeout: .seconds(5))
            worker.terminate(launcher: launcher)
        }
        // Read every report still queued (no process has pid 0, so this waits out the timeout).
        #expect(launcher.termination(of: ProcessID(rawValue: 0), timeout: .milliseconds(500)) == nil)
        #expect(launcher.heldExitReports == 0)
    }
}
