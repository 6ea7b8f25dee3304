import ArgumentParser
import Foundation
import PageStateSoak
import SystemPackage

struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak", abstract: "Long-running robustness runs.", subcommands: [CrashCommand.self, CrashChildCommand.self, SandboxCommand.self])

    struct CrashCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crash",
            abstract: "Kill a checkpointing child with SIGKILL at random moments and check that recovery loads the latest complete checkpoint exactly.")

        @Option(help: "Kill-and-recover rounds.")
        var iterations = 200

        @Option(help: "State directory to use (default: a fresh one under /tmp, removed afterwards).")
        var directory: String?

        @Option(help: "Seed of the workload and of the kill schedule (default: random, printed).")
        var seed: UInt64?

        @Flag(help: "Print the report as one JSON object.")
        var json = false

        func validate() throws {
            guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
        }

        func run() throws {
            let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
            let temporary = directory == nil
            let path = FilePath(directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("pagestate-soak-\(seed)").path)
            defer { if temporary { try? FileManager.default.removeItem(atPath: path.string) } }
            let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            if !json { print("crash soak: \(iterations) iterations, seed \(seed), directory \(path)") }
            let report = CrashSoak.run(iterations: iterations, executable: executable, directory: path, seed: seed) { line in
                if !json { print(line) }
            }
            if json {
                try printJSON(report)
            } else {
                print("""
                    killed by timer \(report.killedByTimer), at a file step \(report.killedAtStep), finished first \(report.finishedBeforeKill); \
                    leftovers cleaned \(report.leftoversCleaned) times; \(report.checkpointsVerified) checkpoint verifications; \
                    latest recovered height \(report.latestRecoveredHeight)
                    """)
                for failure in report.failures { print("FAILURE: \(failure)") }
            }
            if !report.failures.isEmpty { throw ExitCode.failure }
        }
    }

    struct SandboxCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sandbox",
            abstract: "Run many executions through a sandbox pool (with evictions, kills and crashes) and check results, descriptors and child processes.")

        @Option(help: "Executions to run.")
        var executions = 10_000

        @Option(help: "The worker executable (default: pagestate-worker beside this program).")
        var worker: String?

        @Option(help: "Seed of the workload (default: random, printed).")
        var seed: UInt64?

        @Option(help: "Live workers per launcher (default: the pool's, 100); the soak keeps 12 alive, so below 12 it runs several launchers.")
        var workersPerLauncher: Int?

        @Flag(help: "Print the report as one JSON object.")
        var json = false

        func validate() throws {
            guard executions > 0 else { throw ValidationError("--executions must be positive") }
            guard (workersPerLauncher ?? 1) > 0 else { throw ValidationError("--workers-per-launcher must be positive") }
        }

        func run() throws {
            let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
            if !json { print("sandbox soak: \(executions) executions, seed \(seed)") }
            let report = SandboxSoak.run(worker: try WorkerLocation.path(worker), executions: executions, seed: seed,
                                         workersPerLauncher: workersPerLauncher)
            if json {
                try printJSON(report)
            } else {
                print("""
                    \(report.executions) executions, \(report.spawned) workers spawned, \(report.evicted) evicted, \(report.discarded) discarded; \
                    descriptors \(report.descriptorsBefore) → \(report.descriptorsAfter), child processes \(report.childrenBefore) → \(report.childrenAfter); \
                    launchers: \(report.launchersAtMost) at most, \(report.launchers) at the end
                    """)
                for failure in report.failures { print("FAILURE: \(failure)") }
            }
            if !report.failures.isEmpty { throw ExitCode.failure }
        }
    }

    /// The child the crash soak spawns and kills.
    struct CrashChildCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "crash-child", shouldDisplay: false)

        @Option var directory: String
        @Option var seed: UInt64
        @Option var heights = 12
        @Option var crashAtStep: Int?

        func run() throws {
            try CrashSoak.child(directory: FilePath(directory), seed: seed, heights: heights, crashAtStep: crashAtStep)
        }
    }
}
