import ArgumentParser
import Foundation
import PageState

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "Report what this machine supports.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        let features = KernelFeatures.probe()
        if json {
            try printJSON(features)
        } else {
            print(table([("feature", "status", "detail / fallback")] + rows(features)))
        }
    }

    /// One row per probed feature and per setting, in the order a reader checks them.
    private func rows(_ features: KernelFeatures) -> [(String, String, String)] {
        func row(_ feature: KernelFeature) -> (String, String, String) {
            let supported = features[feature]
            var detail = features.details[feature] ?? ""
            if let fallback = features.fallbacks[feature] { detail += (detail.isEmpty ? "" : "; ") + "fallback: \(fallback)" }
            return (title(feature), supported ? "yes" : "no", detail)
        }
        func setting(_ name: String, _ value: CustomStringConvertible?, _ detail: (String) -> String) -> (String, String, String) {
            guard let value else { return (name, "absent", "") }
            return (name, value.description, detail(value.description))
        }
        return [
            ("kernel version", features.kernelVersion, ""),
            ("page size", "\(features.pageSize)", "bytes"),
            row(.memfd), row(.memfdSeals), row(.userfaultfd),
            row(.userfaultfdWriteProtectAsync), row(.userfaultfdWriteProtectUnpopulated), row(.pagemapScan),
            row(.ioUring),
            ("checkpoint writer", FileWriters.best().kind.rawValue, "what checkpoints write with; PAGESTATE_WRITER=pwrite forces the fallback"),
            setting("kernel.io_uring_disabled", features.ioUringDisabledSysctl) {
                ["0": "io_uring allowed", "1": "privileged processes and io_uring_group only"][$0] ?? "io_uring disabled"
            },
            row(.seccompFilter), row(.pidfdExitStatus),
            setting("transparent huge pages", features.transparentHugepages) {
                $0 == "always" ? "write tracking splits huge pages in guest memory" : ""
            },
            setting("vm.max_map_count", features.maxMapCount) { _ in "mappings one process may hold" },
            setting("vm.unprivileged_userfaultfd", features.unprivilegedUserfaultfd) {
                $0 == "0" ? "unprivileged processes get user-mode-only userfaultfd" : "unprivileged userfaultfd allowed"
            },
        ]
    }

    private func title(_ feature: KernelFeature) -> String {
        switch feature {
        case .memfd: "memfd"
        case .memfdSeals: "memfd seals"
        case .userfaultfd: "userfaultfd"
        case .userfaultfdWriteProtectAsync: "userfaultfd WP_ASYNC"
        case .userfaultfdWriteProtectUnpopulated: "userfaultfd WP_UNPOPULATED"
        case .pagemapScan: "PAGEMAP_SCAN"
        case .ioUring: "io_uring"
        case .seccompFilter: "seccomp filters"
        case .pidfdExitStatus: "exit status from pidfd"
        }
    }

    /// Left-aligned columns separated by two spaces, without trailing blanks.
    private func table(_ rows: [(String, String, String)]) -> String {
        let first = rows.map(\.0.count).max() ?? 0
        let second = rows.map(\.1.count).max() ?? 0
        return rows.map { row in
            let line = row.0.padding(toLength: first + 2, withPad: " ", startingAt: 0)
                + row.1.padding(toLength: second + 2, withPad: " ", startingAt: 0) + row.2
            return String(line.reversed().drop { $0 == " " }.reversed())
        }.joined(separator: "\n")
    }
}
