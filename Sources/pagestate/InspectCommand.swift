import ArgumentParser
import Foundation
import PageState
import SystemPackage

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "List a state directory's checkpoints: heights, guests, files, sizes, overlay counts.")

    @Argument(help: "The state directory.")
    var directory: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        let summary = try StateInspector.inspect(directory: FilePath(directory))
        if json {
            try printJSON(summary)
            return
        }
        print("\(summary.directory): \(summary.checkpoints.count) checkpoints, \(summary.tipFiles) tip files, \(summary.scratchEntries) scratch entries")
        let header = ["height", "guests", "memories", "overlays", "max/memory", "bytes", "root hash"]
        let rows: [[String]] = summary.checkpoints.map { checkpoint in
            let hash = checkpoint.error.map { "UNREADABLE: \($0)" } ?? String(checkpoint.rootHash?.prefix(16) ?? "")
            let counts = [checkpoint.guests, checkpoint.memories, checkpoint.overlayFiles, checkpoint.maxOverlaysPerMemory]
            return ["\(checkpoint.height)"] + counts.map(String.init) + ["\(checkpoint.bytes)", hash]
        }
        for row in [header] + rows {
            print(row.dropLast().map { $0.padding(toLength: 11, withPad: " ", startingAt: 0) }.joined() + row.last!)
        }
    }
}
