import Foundation
import Testing

/// Runs the `pagestate` executable built beside the test bundle and returns its standard output.
func runPageState(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let directory = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        .deletingLastPathComponent()
    let process = Process()
    process.executableURL = directory.appendingPathComponent("pagestate")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    var data = Data()
    // `read(upToCount:)` throws where `readDataToEndOfFile()` would trap.
    while let chunk = try pipe.fileHandleForReading.read(upToCount: 1 << 16), !chunk.isEmpty {
        data.append(chunk)
    }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite struct CLITests {
    @Test func doctorJSONHasTheFiveBooleans() throws {
        let (status, output) = try runPageState(["doctor", "--json"])
        #expect(status == 0)
        // JSONDecoder refuses numbers and strings for Bool, so this checks the keys are JSON booleans.
        struct Required: Decodable {
            let memfd_seals, userfaultfd_wp_async, pagemap_scan, io_uring, seccomp_filter: Bool
        }
        _ = try JSONDecoder().decode(Required.self, from: Data(output.utf8))
    }

    @Test func benchDeltaJSONHasTheRequiredFigures() throws {
        let (status, output) = try runPageState(["bench", "delta", "--json", "--entries", "20000"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["suite"] as? String == "delta")
        #expect(object["machine"] is [String: Any])
        #expect(object["notes"] is [Any])
        let figures = try #require(object["figures"] as? [String: Double])
        for key in ["lookups_per_second", "inserts_per_second", "retained_inserts_per_second", "treedictionary_lookups_per_second",
                    "dictionary_lookups_per_second", "union_ms", "clone_modify_ns"] {
            #expect((figures[key] ?? 0) > 0, "\(key) must be a positive figure")
        }
    }

    @Test func benchTrackingJSONHasTheRequiredFigures() throws {
        let (status, output) = try runPageState(["bench", "tracking", "--json"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["suite"] as? String == "tracking")
        let figures = try #require(object["figures"] as? [String: Double])
        var required = ["mprotect_ns_per_page", "raw_mprotect_ns_per_page", "commit_ns_per_page", "rollback_ns_per_page"]
        if figures["raw_uffd_ns_per_page"].map({ $0 > 0 }) == true {
            required += ["uffd_ns_per_page", "uffd_vs_raw", "mprotect_vs_uffd"]  // where the kernel has async uffd-wp
        }
        for key in required { #expect((figures[key] ?? 0) > 0, "\(key) must be a positive figure") }
    }

    @Test func badArgumentsFailWithoutCrashing() throws {
        #expect(try runPageState(["bench", "nonsense"]).status == 64)
        #expect(try runPageState(["bench", "delta", "--entries", "5"]).status == 64)
        #expect(try runPageState(["bench", "delta", "--index-bits", "99"]).status == 64)
    }
}

@Suite struct StateCLITests {
    @Test func benchCheckpointJSONHasTheRequiredFigures() throws {
        let (status, output) = try runPageState(["bench", "checkpoint", "--json", "--dirty-pages", "64", "--guests", "20"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["suite"] as? String == "checkpoint")
        let figures = try #require(object["figures"] as? [String: Double])
        for key in ["flush_mib_per_s", "sequential_mib_per_s", "flush_vs_sequential", "hash_mib_per_s", "load_20_guests_ms"] {
            #expect((figures[key] ?? 0) > 0, "\(key)")
        }
    }

    @Test func verifyAndInspectReportIntactAndDamagedDirectories() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pagestate-cli-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let soak = try runPageState(["soak", "crash", "--iterations", "4", "--directory", directory, "--seed", "11"])
        #expect(soak.status == 0, "\(soak.output)")
        #expect(try runPageState(["verify", directory]).status == 0)
        let inspect = try runPageState(["inspect", directory, "--json"])
        #expect(inspect.status == 0)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(inspect.output.utf8)) as? [String: Any])
        let checkpoints = try #require(summary["checkpoints"] as? [[String: Any]])
        #expect(!checkpoints.isEmpty && checkpoints.allSatisfy { $0["error"] == nil && ($0["guests"] as? Int ?? 0) > 0 })
        // Damage one byte of the newest checkpoint's STATE: verify fails and names the file.
        let newest = try #require(try FileManager.default.contentsOfDirectory(atPath: directory + "/checkpoints").sorted().last)
        let state = directory + "/checkpoints/" + newest + "/STATE"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: state))
        bytes[bytes.count / 2] ^= 1
        try bytes.write(to: URL(fileURLWithPath: state))
        let damaged = try runPageState(["verify", directory])
        #expect(damaged.status != 0)
        #expect(damaged.output.contains(newest + "/STATE"))
        #expect(try runPageState(["verify", directory + "/missing"]).status != 0)
    }
}
