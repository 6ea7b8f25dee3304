import Foundation
import PageStateStore
import Synchronization
import SystemPackage

/// The crash-injection soak behind `pagestate soak crash` and the test suite: a child process
/// commits and checkpoints the deterministic `SoakWorkload` and is killed with SIGKILL — after a
/// random delay, or exactly at the n-th file step (an overlay or merge written, STATE or MANIFEST
/// written, a directory synced, a checkpoint renamed or deleted). After each kill the parent
/// recovers: leftovers must be cleaned, every checkpoint must verify, and the latest one must load,
/// be at least as new as the last checkpoint the child reported durable, and equal the model.
public enum CrashSoak {
    public struct Report: Sendable, Codable {
        public var iterations = 0
        public var killedByTimer = 0
        public var killedAtStep = 0
        public var finishedBeforeKill = 0
        public var leftoversCleaned = 0
        public var checkpointsVerified = 0
        public var latestRecoveredHeight: UInt64 = 0
        public var failures: [String] = []
    }

    /// Runs `iterations` kill-and-recover rounds against `directory`, spawning `executable` (the
    /// `pagestate` binary) as the child.
    public static func run(iterations: Int, executable: String, directory: FilePath, seed: UInt64,
                           progress: (String) -> Void = { _ in }) -> Report {
        var report = Report()
        let workload = SoakWorkload(seed: seed)
        var random = SplitMix64(seed: seed)
        var model: (height: Height, guests: [GuestID: SoakWorkload.GuestModel]) = (0, [:])
        for iteration in 0..<iterations {
            report.iterations += 1
            let crashAtStep: Int? = iteration % 2 == 1 ? 1 + Int(random.next() % 40) : nil
            let delay = useconds_t(random.next() % 60_000)
            do {
                let durable = try runChild(executable: executable, directory: directory, seed: seed,
                                           crashAtStep: crashAtStep, killAfter: crashAtStep == nil ? delay : nil, report: &report)
                try recover(directory: directory, workload: workload, durable: durable, model: &model, report: &report)
            } catch {
                report.failures.append("iteration \(iteration): \(error)")
                progress("iteration \(iteration): FAILED \(error)")
                return report
            }
            if iteration % 20 == 19 { progress("\(iteration + 1) iterations, recovered height \(model.height)") }
        }
        return report
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Spawns the child and kills it; returns the newest height it reported durable.
    private static func runChild(executable: String, directory: FilePath, seed: UInt64, crashAtStep: Int?,
                                 killAfter delay: useconds_t?, report: inout Report) throws -> Height? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["soak", "crash-child", "--directory", directory.string, "--seed", "\(seed)"]
            + (crashAtStep.map { ["--crash-at-step", "\($0)"] } ?? [])
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        if let delay {
            usleep(delay)
            kill(process.processIdentifier, SIGKILL)
        }
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let complaints = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        switch (process.terminationReason, process.terminationStatus) {
        case (.uncaughtSignal, SIGKILL): if crashAtStep == nil { report.killedByTimer += 1 } else { report.killedAtStep += 1 }
        case (.exit, 0): report.finishedBeforeKill += 1
        default: throw Failure(description: "child ended with \(process.terminationReason) \(process.terminationStatus): \(complaints)")
        }
        return printed.split(separator: "\n").compactMap { line in line.hasPrefix("durable ") ? Height(line.dropFirst(8)) : nil }.max()
    }

    private static func recover(directory: FilePath, workload: SoakWorkload, durable: Height?,
                                model: inout (height: Height, guests: [GuestID: SoakWorkload.GuestModel]), report: inout Report) throws {
        let manager = try StateManager(directory: directory)
        if !manager.recovery.removedScratchEntries.isEmpty || !manager.recovery.removedTipFiles.isEmpty { report.leftoversCleaned += 1 }
        for part in ["scratch", "tip"] {
            let left = try FileManager.default.contentsOfDirectory(atPath: directory.appending(part).string)
            guard left.isEmpty else { throw Failure(description: "\(part)/ not cleaned: \(left)") }
        }
        for result in try StateVerifier.verify(directory: directory) {
            if let error = result.error { throw Failure(description: "checkpoint \(result.height) does not verify: \(error)") }
            report.checkpointsVerified += 1
        }
        let loaded = try manager.load(verification: .full)
        if let durable, loaded.height < durable {
            throw Failure(description: "recovered height \(loaded.height), but \(durable) was reported durable")
        }
        if loaded.height < model.height { model = (0, [:]) }
        workload.advance(&model.guests, from: model.height, to: loaded.height)
        model.height = loaded.height
        if let difference = SoakWorkload.difference(loaded.state, model.guests) {
            throw Failure(description: "height \(loaded.height): \(difference)")
        }
        report.latestRecoveredHeight = loaded.height
    }

    /// The child: continues the workload from the latest checkpoint for `heights` heights,
    /// checkpointing every third and collecting garbage every fifth; prints "durable H" after each
    /// checkpoint; with `crashAtStep`, kills itself with SIGKILL at that file step.
    public static func child(directory: FilePath, seed: UInt64, heights: Int, crashAtStep: Int?) throws {
        var options = StateManager.Options()
        let steps = StepCounter()
        if let crashAtStep {
            options.onStep = { _ in if steps.count.add(1, ordering: .relaxed).newValue == crashAtStep { kill(getpid(), SIGKILL) } }
        }
        let manager = try StateManager(directory: directory, options: options)
        let loaded = try manager.load()
        var state = loaded.state
        let workload = SoakWorkload(seed: seed)
        for height in (loaded.height + 1)...(loaded.height + UInt64(heights)) {
            try workload.apply(height: height, to: &state, allocator: manager.allocator)
            try manager.commit(height: height, state: state)
            if height % 3 == 0 {
                try manager.checkpoint(height: height)
                FileHandle.standardOutput.write(Data("durable \(height)\n".utf8))  // unbuffered: survives SIGKILL
            }
            if height % 5 == 0 { try manager.collectGarbage(keepLast: 2) }
        }
        manager.waitForBackgroundWork()
    }

    private final class StepCounter: Sendable {
        let count = Atomic<Int>(0)
    }
}
