import Foundation
import Glibc
@testable import PageStateKernel
import SystemPackage
import Testing

@Suite("Exit status from a pidfd", .enabled(if: KernelFeatures.pidfdExitStatusAvailable, "needs PIDFD_INFO_EXIT (Linux 6.15+)"))
struct PidfdExitStatusTests {
    /// Starts `sh -c script` with its standard input reading from a pipe; returns its pid, a pidfd
    /// for it and the pipe's write end (closing it lets `read` in the script return).
    func start(_ script: String) throws -> (ProcessID, FileDescriptor, FileDescriptor) {
        let (read, write) = try FileDescriptor.pipe()
        defer { try? read.close() }
        let pid = try spawnProcess("/bin/sh", arguments: ["sh", "-c", script], environment: [],
                                   descriptors: [read, .standardOutput, .standardError])
        return (pid, try FileDescriptor.processDescriptor(pid), write)
    }

    @Test("nothing while the process runs or is an unreaped zombie; its status once reaped")
    func statusOnceReaped() throws {
        let (pid, pidfd, input) = try start("read line; exit 7")
        defer { try? pidfd.close() }
        #expect(try pidfd.exitStatus() == nil, "running")
        try input.close()
        #expect(try pidfd.waitReadable(timeoutMilliseconds: 10_000), "exited")
        #expect(try pidfd.exitStatus() == nil, "a zombie: its parent has not reaped it")
        #expect(try waitForChild(pid, block: true) == .exited(7))
        #expect(try pidfd.exitStatus() == .exited(7))
    }

    @Test("a killed process reads as signaled; waiting for the status reaps nothing itself")
    func killedProcess() throws {
        let (pid, pidfd, input) = try start("read line")
        defer { try? pidfd.close(); try? input.close() }
        try pidfd.sendSignal(SIGKILL)
        let reaper = Thread { _ = try? waitForChild(pid, block: true) }  // the parent's part
        reaper.start()
        #expect(pidfd.waitForExitStatus(until: .now + .seconds(10)) == .signaled(SIGKILL))
    }

    @Test("waiting for a process that does not exit gives nil at the deadline")
    func waitingTimesOut() throws {
        let (pid, pidfd, input) = try start("read line")
        defer { try? pidfd.close() }
        let deadline = ContinuousClock.now + .milliseconds(200)
        #expect(pidfd.waitForExitStatus(until: deadline) == nil)
        #expect(ContinuousClock.now >= deadline)
        try input.close()
        #expect(try waitForChild(pid, block: true) == .exited(1), "read failed at end of input")
    }
}
