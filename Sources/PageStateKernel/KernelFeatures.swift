/// A kernel facility PageState uses when present; raw values are the `pagestate doctor --json` keys.
public enum KernelFeature: String, CaseIterable, Sendable, Codable, CodingKeyRepresentable {
    case memfd
    case memfdSeals = "memfd_seals"
    case userfaultfd
    case userfaultfdWriteProtectAsync = "userfaultfd_wp_async"
    case userfaultfdWriteProtectUnpopulated = "userfaultfd_wp_unpopulated"
    case pagemapScan = "pagemap_scan"
    case ioUring = "io_uring"
    case seccompFilter = "seccomp_filter"
    case pidfdExitStatus = "pidfd_exit_status"

    /// What PageState does instead when the feature is missing (nil: nothing depends on it alone).
    public var fallback: String? {
        switch self {
        case .memfd: "unlinked file in a directory"
        case .memfdSeals: "unsealed memfd (a hostile holder could shrink it)"
        case .userfaultfd: nil
        case .userfaultfdWriteProtectAsync, .userfaultfdWriteProtectUnpopulated, .pagemapScan:
            "mprotect + SIGSEGV tracker"
        case .ioUring: "pwrite + fsync writer"
        case .seccompFilter: "no syscall filter: workers are only namespaced/rlimited (unsafe for untrusted guests)"
        case .pidfdExitStatus: "the launcher reaps workers with waitpid(-1) and reports their exits (a walk over every worker per exit)"
        }
    }
}

/// What this machine's kernel supports of what PageState uses, as found by `probe()`.
public struct KernelFeatures: Sendable, Codable, Hashable {
    /// The kernel release (`uname -r`).
    public var kernelVersion: String
    /// The page size in bytes (`sysconf(_SC_PAGESIZE)`).
    public var pageSize: Int
    /// `memfd_create` works.
    public var memfd = false
    /// `F_SEAL_SHRINK` on a memfd makes shrinking it fail with `EPERM`.
    public var memfdSeals = false
    /// A userfaultfd can be opened, if need be for user-mode faults only.
    public var userfaultfd = false
    /// `UFFD_FEATURE_WP_ASYNC` is offered and a write-protect registration succeeds.
    public var userfaultfdWriteProtectAsync = false
    /// `UFFD_FEATURE_WP_UNPOPULATED` is offered: never-touched pages are write-protected too.
    public var userfaultfdWriteProtectUnpopulated = false
    /// The `PAGEMAP_SCAN` ioctl on `/proc/self/pagemap` works.
    public var pagemapScan = false
    /// An io_uring can be set up by this process.
    public var ioUring = false
    /// `kernel.io_uring_disabled` (0 allowed, 1 privileged or io_uring_group only, 2 disabled); nil when absent.
    public var ioUringDisabledSysctl: Int?
    /// Seccomp filters can be loaded and may kill the whole process.
    public var seccompFilter = false
    /// A pidfd tells how its process ended once it has been reaped (`PIDFD_INFO_EXIT`, Linux 6.15+).
    public var pidfdExitStatus = false
    /// The selected transparent huge pages mode (`always`, `madvise`, `never`); nil when absent.
    public var transparentHugepages: String?
    /// `vm.max_map_count`: the most mappings one process may hold.
    public var maxMapCount: Int?
    /// `vm.unprivileged_userfaultfd`: 1 when unprivileged processes may handle kernel-mode faults too.
    public var unprivilegedUserfaultfd: Int?
    /// Why a feature is missing, or a remark on how it is available.
    public var details: [KernelFeature: String] = [:]

    init(kernelVersion: String, pageSize: Int) {
        self.kernelVersion = kernelVersion
        self.pageSize = pageSize
    }

    /// Whether `feature` is available.
    public subscript(feature: KernelFeature) -> Bool {
        switch feature {
        case .memfd: memfd
        case .memfdSeals: memfdSeals
        case .userfaultfd: userfaultfd
        case .userfaultfdWriteProtectAsync: userfaultfdWriteProtectAsync
        case .userfaultfdWriteProtectUnpopulated: userfaultfdWriteProtectUnpopulated
        case .pagemapScan: pagemapScan
        case .ioUring: ioUring
        case .seccompFilter: seccompFilter
        case .pidfdExitStatus: pidfdExitStatus
        }
    }

    /// Dirty pages can be tracked with async userfaultfd write protection and PAGEMAP_SCAN.
    public var asyncWriteTracking: Bool {
        userfaultfdWriteProtectAsync && userfaultfdWriteProtectUnpopulated && pagemapScan
    }

    /// The fallback in use for each missing feature.
    public var fallbacks: [KernelFeature: String] {
        var result: [KernelFeature: String] = [:]
        for feature in KernelFeature.allCases where !self[feature] {
            if feature == .memfdSeals && !memfd { continue }  // the memfd fallback covers it
            result[feature] = feature.fallback
        }
        return result
    }
}

extension KernelFeatures {
    public enum CodingKeys: String, CodingKey {
        case kernelVersion = "kernel_version", pageSize = "page_size"
        case memfd, memfdSeals = "memfd_seals", userfaultfd
        case userfaultfdWriteProtectAsync = "userfaultfd_wp_async"
        case userfaultfdWriteProtectUnpopulated = "userfaultfd_wp_unpopulated"
        case pagemapScan = "pagemap_scan", ioUring = "io_uring", ioUringDisabledSysctl = "io_uring_disabled_sysctl"
        case seccompFilter = "seccomp_filter", pidfdExitStatus = "pidfd_exit_status", transparentHugepages = "transparent_hugepages"
        case maxMapCount = "max_map_count", unprivilegedUserfaultfd = "unprivileged_userfaultfd", details
    }

    private enum DerivedKeys: String, CodingKey { case fallbacks }

    /// Encodes absent values as null and adds the derived `fallbacks` (ignored when decoding).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kernelVersion, forKey: .kernelVersion)
        try container.encode(pageSize, forKey: .pageSize)
        try container.encode(memfd, forKey: .memfd)
        try container.encode(memfdSeals, forKey: .memfdSeals)
        try container.encode(userfaultfd, forKey: .userfaultfd)
        try container.encode(userfaultfdWriteProtectAsync, forKey: .userfaultfdWriteProtectAsync)
        try container.encode(userfaultfdWriteProtectUnpopulated, forKey: .userfaultfdWriteProtectUnpopulated)
        try container.encode(pagemapScan, forKey: .pagemapScan)
        try container.encode(ioUring, forKey: .ioUring)
        try container.encode(ioUringDisabledSysctl, forKey: .ioUringDisabledSysctl)
        try container.encode(seccompFilter, forKey: .seccompFilter)
        try container.encode(pidfdExitStatus, forKey: .pidfdExitStatus)
        try container.encode(transparentHugepages, forKey: .transparentHugepages)
        try container.encode(maxMapCount, forKey: .maxMapCount)
        try container.encode(unprivilegedUserfaultfd, forKey: .unprivilegedUserfaultfd)
        try container.encode(details, forKey: .details)
        var derived = encoder.container(keyedBy: DerivedKeys.self)
        try derived.encode(fallbacks, forKey: .fallbacks)
    }
}
