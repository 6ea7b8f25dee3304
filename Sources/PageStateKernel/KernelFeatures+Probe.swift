import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A failed step of a probe: the call that failed and its error.
struct ProbeFailure: Error, CustomStringConvertible {
    var step: String
    var error: any Error
    var errno: Errno? { error as? Errno }
    var description: String { "\(step): \(error)" }
}

/// Runs one step of a probe, labelling its error with the step's name.
private func attempt<T>(_ step: String, _ body: () throws -> T) throws(ProbeFailure) -> T {
    do { return try body() } catch { throw ProbeFailure(step: step, error: error) }
}

extension KernelFeatures {
    /// Tries each feature on this machine; a failing probe reports the feature missing, with the reason in `details`.
    public static func probe() -> KernelFeatures {
        var features = KernelFeatures(kernelVersion: kernelRelease(), pageSize: systemPageSize)
        features.probeMemfd()
        features.probeUserfaultfd()
        features.probePagemapScan()
        features.ioUringDisabledSysctl = readInteger("/proc/sys/kernel/io_uring_disabled")
        features.probeIoUring()
        features.probeSeccomp()
        features.probePidfdExitStatus()
        features.transparentHugepages = readFile("/sys/kernel/mm/transparent_hugepage/enabled").flatMap(selectedMode)
        features.maxMapCount = readInteger("/proc/sys/vm/max_map_count")
        features.unprivilegedUserfaultfd = readInteger("/proc/sys/vm/unprivileged_userfaultfd")
        return features
    }

    /// A memfd can be created, and F_SEAL_SHRINK makes shrinking it fail with EPERM.
    mutating func probeMemfd() {
        let fd: FileDescriptor
        do { fd = try attempt("memfd_create") { try FileDescriptor.memfd(name: "pagestate-doctor") } } catch {
            details[.memfd] = error.description
            details[.memfdSeals] = "needs memfd"
            return
        }
        defer { try? fd.close() }
        memfd = true
        do {
            try attempt("ftruncate") { try fd.resize(to: Int64(2 * pageSize)) }
            try attempt("F_ADD_SEALS(F_SEAL_SHRINK)") { try fd.addSeals(.shrink) }
            try fd.resize(to: Int64(pageSize))
            details[.memfdSeals] = "ftruncate succeeded despite F_SEAL_SHRINK"
        } catch let error as Errno where error == .notPermitted {
            memfdSeals = true
        } catch {
            details[.memfdSeals] = "\(error)"
        }
    }

    /// A userfaultfd can be opened (privileged, else user-mode only) and offers async write protection
    /// that a registration of anonymous memory accepts.
    mutating func probeUserfaultfd() {
        let available: UserfaultfdFeatures
        let flags: UserfaultfdFlags
        do {
            (flags, available) = try Self.openUserfaultfd { fd throws(ProbeFailure) in
                try attempt("UFFDIO_API") { try fd.uffdAPI(features: []) }
            }
        } catch {
            details[.userfaultfd] = error.description
            details[.userfaultfdWriteProtectAsync] = "needs userfaultfd"
            details[.userfaultfdWriteProtectUnpopulated] = "needs userfaultfd"
            return
        }
        userfaultfd = true
        if flags.contains(.userModeOnly) { details[.userfaultfd] = "user-mode faults only (unprivileged)" }
        userfaultfdWriteProtectUnpopulated = available.contains(.writeProtectUnpopulated)
        if !userfaultfdWriteProtectUnpopulated { details[.userfaultfdWriteProtectUnpopulated] = "not offered (Linux 6.6+)" }
        guard available.contains(.writeProtectAsync) else {
            details[.userfaultfdWriteProtectAsync] = "not offered (Linux 6.7+)"
            return
        }
        do {
            let wanted = available.intersection([.writeProtectAsync, .writeProtectUnpopulated])
            let page = pageSize
            _ = try Self.openUserfaultfd(flags) { fd throws(ProbeFailure) in
                _ = try attempt("UFFDIO_API(WP_ASYNC)") { try fd.uffdAPI(features: wanted) }
                let memory = try attempt("mmap") {
                    try mapMemory(length: page, protection: [.read, .write], flags: [.private, .anonymous])
                }
                defer { try? unmapMemory(memory, length: page) }
                try attempt("UFFDIO_REGISTER(WP)") { try fd.uffdRegister(memory, length: page, mode: .writeProtect) }
            }
            userfaultfdWriteProtectAsync = true
        } catch {
            details[.userfaultfdWriteProtectAsync] = error.description
        }
    }

    /// Opens a userfaultfd with `flags` (by default privileged, retried user-mode only on EPERM),
    /// runs `body` on it and closes it.
    private static func openUserfaultfd<T>(
        _ flags: UserfaultfdFlags? = nil, _ body: (FileDescriptor) throws(ProbeFailure) -> T
    ) throws(ProbeFailure) -> (UserfaultfdFlags, T) {
        var chosen = flags ?? [.closeOnExec, .nonBlocking]
        let fd: FileDescriptor
        do {
            fd = try attempt("userfaultfd") { try FileDescriptor.userfaultfd(flags: chosen) }
        } catch where flags == nil && error.errno == .notPermitted {
            chosen.insert(.userModeOnly)
            fd = try attempt("userfaultfd(UFFD_USER_MODE_ONLY)") { try FileDescriptor.userfaultfd(flags: chosen) }
        }
        defer { try? fd.close() }
        return (chosen, try body(fd))
    }

    /// PAGEMAP_SCAN accepts a scan of a small anonymous mapping.
    mutating func probePagemapScan() {
        let page = pageSize
        do {
            let pagemap = try attempt("open /proc/self/pagemap") {
                try FileDescriptor.open("/proc/self/pagemap", .readOnly, options: .closeOnExec)
            }
            defer { try? pagemap.close() }
            let memory = try attempt("mmap") {
                try mapMemory(length: page, protection: [.read, .write], flags: [.private, .anonymous])
            }
            defer { try? unmapMemory(memory, length: page) }
            var region = PageRegion()
            _ = try attempt("PAGEMAP_SCAN") {
                try withUnsafeMutablePointer(to: &region) { pointer in
                    try pagemap.pagemapScan(memory, length: page, categories: .written,
                                            into: UnsafeMutableBufferPointer(start: pointer, count: 1))
                }
            }
            pagemapScan = true
        } catch where error.errno == .inappropriateIOCTLForDevice || error.errno == .invalidArgument {
            details[.pagemapScan] = "\(error) (Linux 6.7+)"
        } catch {
            details[.pagemapScan] = error.description
        }
    }

    /// A small io_uring can be set up; `kernel.io_uring_disabled` explains a refusal.
    mutating func probeIoUring() {
        let result = ps_io_uring_probe()
        if result == 0 {
            ioUring = true
            if ioUringDisabledSysctl == 1 { details[.ioUring] = "kernel.io_uring_disabled=1, but this process may" }
            return
        }
        let reason = "io_uring_setup: \(Errno(rawValue: -result))"
        details[.ioUring] = switch ioUringDisabledSysctl {
        case 2: "\(reason) (kernel.io_uring_disabled=2)"
        case 1: "\(reason) (kernel.io_uring_disabled=1: privileged or io_uring_group only)"
        default: reason
        }
    }

    /// Seccomp is built in and filters may kill the whole process (SECCOMP_RET_KILL_PROCESS, Linux 4.14+).
    mutating func probeSeccomp() {
        do {
            let mode = try attempt("prctl(PR_GET_SECCOMP)") { try valueOrErrno { ps_prctl_get_seccomp() } }
            try attempt("seccomp(SECCOMP_GET_ACTION_AVAIL, KILL_PROCESS)") {
                try nothingOrErrno { ps_seccomp_kill_process_available() }
            }
            seccompFilter = true
            if mode == 2 { details[.seccompFilter] = "this process is already filtered; filters stack" }
        } catch {
            details[.seccompFilter] = error.description
        }
    }
}

extension KernelFeatures {
    /// A child's exit status reads back from its pidfd after it is reaped (`ps_pidfd_exit_status_probe`).
    mutating func probePidfdExitStatus() {
        switch ps_pidfd_exit_status_probe() {
        case 1: pidfdExitStatus = true
        case 0: details[.pidfdExitStatus] = "PIDFD_INFO_EXIT not reported (Linux 6.15+)"
        default:
            let failure = Errno(rawValue: errno)
            details[.pidfdExitStatus] = failure == .inappropriateIOCTLForDevice || failure == .invalidArgument
                ? "PIDFD_GET_INFO: \(failure) (Linux 6.15+)" : "probe: \(failure)"
        }
    }

    /// Whether pidfds report exit statuses on this machine: `pidfdExitStatus`, probed once per process.
    public static let pidfdExitStatusAvailable: Bool = {
        var features = KernelFeatures(kernelVersion: "", pageSize: 0)
        features.probePidfdExitStatus()
        return features.pidfdExitStatus
    }()
}

/// The kernel release, as `uname -r` prints it.
private func kernelRelease() -> String {
    var name = utsname()
    guard uname(&name) == 0 else { return "unknown" }
    return withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// The bracketed choice of a sysfs mode list such as `always [madvise] never`.
private func selectedMode(_ list: String) -> String? {
    guard let open = list.firstIndex(of: "["), let close = list[open...].firstIndex(of: "]") else { return nil }
    return String(list[list.index(after: open)..<close])
}

/// The first line of a small file under /proc or /sys; nil when it cannot be read.
private func readFile(_ path: FilePath) -> String? {
    (try? readProcFile(path)).map { String($0.prefix { $0 != "\n" }) }
}

private func readInteger(_ path: FilePath) -> Int? {
    readFile(path).flatMap { Int($0) }
}
