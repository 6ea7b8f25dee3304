import Foundation
import PageState
import PageStateSoak
import SystemPackage
import Testing

@Suite struct CrashRecoveryTests {
    /// 200 rounds: a child commits and checkpoints and is SIGKILLed after a random delay or exactly at
    /// a random file step (writing an overlay or merge, STATE, MANIFEST, syncing, renaming, deleting).
    /// Each recovery must clean leftovers, verify every checkpoint, and load the newest complete one
    /// with exactly the model's contents.
    @Test func recoveryAfterSigkillLoadsTheLatestCompleteCheckpoint() throws {
        let directory = try TemporaryDirectory()
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let pagestate = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("pagestate").path
        let seed = UInt64.random(in: 0...UInt64.max)
        let report = CrashSoak.run(iterations: 200, executable: pagestate, directory: directory.path, seed: seed)
        #expect(report.failures.isEmpty, "seed \(seed): \(report.failures)")
        #expect(report.iterations == 200)
        // The schedule really interrupted work: most children died mid-run, some at file steps,
        // and recovery had partial files to clean up.
        #expect(report.killedAtStep > 50, "seed \(seed)")
        #expect(report.killedByTimer + report.finishedBeforeKill == 100, "seed \(seed)")
        #expect(report.leftoversCleaned > 0, "seed \(seed)")
        #expect(report.latestRecoveredHeight > 0, "seed \(seed)")
    }
}
