import ArgumentParser
import PageState
import SystemPackage

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every byte of every checkpoint in a state directory; exit non-zero naming the damaged file.")

    @Argument(help: "The state directory.")
    var directory: String

    func run() throws {
        let results = try StateVerifier.verify(directory: FilePath(directory))
        if results.isEmpty { print("no checkpoints in \(directory)") }
        for result in results {
            if let error = result.error {
                print("checkpoint \(result.height): DAMAGED: \(error)")
            } else {
                print("checkpoint \(result.height): intact, root hash \(result.rootHash!)")
            }
        }
        if results.contains(where: { $0.error != nil }) { throw ExitCode.failure }
    }
}
