import ArgumentParser
import PageStateBench

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Run a measurement suite and print its figures side by side.")

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case delta
    }

    @Argument(help: "The suite to run: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var suite: Suite

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Entries in the delta suite's maps.")
    var entries = 1_000_000

    func validate() throws {
        guard entries >= 20_000 else { throw ValidationError("--entries must be at least 20000") }
    }

    func run() throws {
        let report = switch suite {
        case .delta: try DeltaSuite.run(entries: entries)
        }
        print(json ? try report.json() : report.table())
    }
}
