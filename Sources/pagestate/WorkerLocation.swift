import ArgumentParser
import Foundation
import SystemPackage

/// Where the worker executable is: as given, or `pagestate-worker` beside this program.
enum WorkerLocation {
    static func path(_ given: String?) throws -> FilePath {
        if let given { return FilePath(given) }
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let sibling = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("pagestate-worker").path
        guard FileManager.default.isExecutableFile(atPath: sibling) else {
            throw ValidationError("no worker executable at \(sibling); build it (swift build --product pagestate-worker) or pass --worker")
        }
        return FilePath(sibling)
    }
}
