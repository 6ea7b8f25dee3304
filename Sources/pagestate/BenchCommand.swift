import ArgumentParser
import PageStateBench
import SystemPackage

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Run a measurement suite and print its figures side by side.")

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case delta
        case tracking
        case checkpoint
        case spawn
        case sandbox
    }

    @Argument(help: "The suite to run: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var suite: Suite

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Entries in the delta suite's maps.")
    var entries = 1_000_000

    @Option(help: "The delta suite draws page indices from 0..<2^index-bits (20 with a million entries: a dense 4 GiB memory).")
    var indexBits = 20

    @Option(help: "Where the checkpoint suite writes its files (the device measured).")
    var directory = "/tmp"

    @Option(help: "Guests the checkpoint suite loads.")
    var guests = 10_000

    @Option(parsing: .upToNextOption, help: "Scattered dirty page counts the checkpoint suite flushes.")
    var dirtyPages = [4096, 65_536]

    @Option(help: "The worker executable for the spawn and sandbox suites (default: pagestate-worker beside this program).")
    var worker: String?

    @Option(parsing: .upToNextOption, help: "Live worker counts the spawn suite measures at.")
    var liveWorkers = [1, 100, 1000]

    @Option(help: "Paced spawns (and as many burst spawns and bare forks) the spawn suite times per live count, in phases of 200. A p99 is the 1% slowest: from 4,000 samples per count, spawn_p99_1000_vs_1 passes 1.2 in ~7% of runs here; from 12,000, roughly 0.2% (resampled from measured phases; about 5 minutes with the default live counts).")
    var spawnSamples = SpawnSuite.defaultSamples

    @Option(help: "Live workers per launcher in the spawn suite (default: the pool's, 100). Fewer spread the workers over more launchers, each sharing its pages with fewer processes.")
    var workersPerLauncher: Int?

    @Option(help: "Run the whole suite this many times and report each figure's median (the machines are noisy).")
    var runs = 1

    func validate() throws {
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be in 1...50") }
        guard !dirtyPages.isEmpty, dirtyPages.allSatisfy({ (1...1_000_000).contains($0) }), (1...100_000).contains(guests) else {
            throw ValidationError("--dirty-pages must be in 1...1000000 and --guests in 1...100000")
        }
        guard !liveWorkers.isEmpty, liveWorkers.allSatisfy({ (1...5000).contains($0) }) else {
            throw ValidationError("--live-workers must be in 1...5000")
        }
        guard (10...100_000).contains(spawnSamples) else { throw ValidationError("--spawn-samples must be in 10...100000") }
        guard (workersPerLauncher ?? 1) > 0 else { throw ValidationError("--workers-per-launcher must be positive") }
        guard entries >= 20_000 else { throw ValidationError("--entries must be at least 20000") }
        guard (1...40).contains(indexBits), 1 << indexBits >= entries else {
            throw ValidationError("--index-bits must be in 1...40 and leave room for --entries distinct indices")
        }
    }

    func run() throws {
        let reports = try (0..<runs).map { _ in
            try BenchReport.measuringMachineLoad { () throws -> BenchReport in try runSuite() }
        }
        let report = BenchReport.median(of: reports)
        print(json ? try report.json() : report.table())
    }

    private func runSuite() throws -> BenchReport {
        switch suite {
        case .delta: try DeltaSuite.run(entries: entries, indexBits: indexBits)
        case .tracking: try TrackingSuite.run()
        case .checkpoint: try CheckpointSuite.run(directory: FilePath(directory), dirtyCounts: dirtyPages, guests: guests)
        case .spawn: try SpawnSuite.run(worker: try WorkerLocation.path(worker), liveCounts: liveWorkers, samples: spawnSamples,
                                          workersPerLauncher: workersPerLauncher)
        case .sandbox: try SandboxSuite.run(worker: try WorkerLocation.path(worker))
        }
    }
}
