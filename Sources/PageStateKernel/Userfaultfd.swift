import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Flags of a new userfaultfd.
public struct UserfaultfdFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let closeOnExec = UserfaultfdFlags(rawValue: O_CLOEXEC)
    public static let nonBlocking = UserfaultfdFlags(rawValue: O_NONBLOCK)
    /// Handle only faults from user mode: allowed without privilege when `vm.unprivileged_userfaultfd` is 0.
    public static let userModeOnly = UserfaultfdFlags(rawValue: Int32(PS_UFFD_USER_MODE_ONLY))
}

/// Optional userfaultfd features (`UFFD_FEATURE_*`) negotiated with `UFFDIO_API`.
public struct UserfaultfdFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Write faults on write-protected pages are resolved by the kernel, which only records them (6.7+).
    public static let writeProtectAsync = UserfaultfdFeatures(rawValue: UInt64(PS_UFFD_FEATURE_WP_ASYNC))
    /// Write protection also covers pages never populated (6.6+).
    public static let writeProtectUnpopulated = UserfaultfdFeatures(rawValue: UInt64(PS_UFFD_FEATURE_WP_UNPOPULATED))
}

/// What a `UFFDIO_REGISTER` range reports faults for.
public struct UserfaultfdRegisterMode: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let missing = UserfaultfdRegisterMode(rawValue: UInt64(UFFDIO_REGISTER_MODE_MISSING))
    public static let writeProtect = UserfaultfdRegisterMode(rawValue: UInt64(UFFDIO_REGISTER_MODE_WP))
}

extension FileDescriptor {
    /// Creates a userfaultfd; it must be enabled with `uffdAPI(features:)` before use.
    ///
    /// The corresponding C function is `syscall(SYS_userfaultfd, flags)`.
    public static func userfaultfd(flags: UserfaultfdFlags) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { ps_userfaultfd(flags.rawValue) })
    }

    /// Enables a new userfaultfd with `features` and returns every feature the kernel offers.
    /// Throws `EINVAL` when a requested feature is unavailable or the handshake was already done.
    ///
    /// The corresponding C function is `ioctl(fd, UFFDIO_API, &api)`.
    public func uffdAPI(features: UserfaultfdFeatures) throws(Errno) -> UserfaultfdFeatures {
        var api = uffdio_api(api: UInt64(UFFD_API), features: features.rawValue, ioctls: 0)
        try nothingOrErrno { ps_ioctl_ptr(rawValue, PS_UFFDIO_API, &api) }
        return UserfaultfdFeatures(rawValue: api.features)
    }

    /// Registers `length` bytes at `address` (page-aligned) with this userfaultfd.
    ///
    /// The corresponding C function is `ioctl(fd, UFFDIO_REGISTER, &register)`.
    public func uffdRegister(_ address: UnsafeMutableRawPointer, length: Int, mode: UserfaultfdRegisterMode) throws(Errno) {
        let range = uffdio_range(start: UInt64(UInt(bitPattern: address)), len: UInt64(length))
        var register = uffdio_register(range: range, mode: mode.rawValue, ioctls: 0)
        try nothingOrErrno { ps_ioctl_ptr(rawValue, PS_UFFDIO_REGISTER, &register) }
    }

    /// Write-protects (or unprotects) `length` bytes at `address` in a range registered for write protection.
    ///
    /// The corresponding C function is `ioctl(fd, UFFDIO_WRITEPROTECT, &writeprotect)`.
    public func uffdWriteProtect(_ address: UnsafeMutableRawPointer, length: Int, enable: Bool = true) throws(Errno) {
        let range = uffdio_range(start: UInt64(UInt(bitPattern: address)), len: UInt64(length))
        var writeProtect = uffdio_writeprotect(range: range, mode: enable ? UInt64(UFFDIO_WRITEPROTECT_MODE_WP) : 0)
        try nothingOrErrno { ps_ioctl_ptr(rawValue, PS_UFFDIO_WRITEPROTECT, &writeProtect) }
    }
}

/// Page categories PAGEMAP_SCAN matches and reports (`PAGE_IS_*`).
public struct PageCategories: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The page lies in a range registered for async userfaultfd write protection.
    public static let writeProtectAllowed = PageCategories(rawValue: UInt64(PS_PAGE_IS_WPALLOWED))
    /// The page was written since write protection was last applied.
    public static let written = PageCategories(rawValue: UInt64(PS_PAGE_IS_WRITTEN))
}

/// PAGEMAP_SCAN options (`PM_SCAN_*`).
public struct PagemapScanFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Write-protect the reported pages again in the same walk.
    public static let writeProtectMatching = PagemapScanFlags(rawValue: UInt64(PS_PM_SCAN_WP_MATCHING))
    /// Fail with `EPERM` unless the whole range is registered for async write protection.
    public static let checkWriteProtectAsync = PagemapScanFlags(rawValue: UInt64(PS_PM_SCAN_CHECK_WPASYNC))
}

/// A run of pages `[start, end)` sharing `categories`, as PAGEMAP_SCAN reports it (`struct page_region`).
public typealias PageRegion = ps_page_region

extension FileDescriptor {
    /// Scans `length` bytes at `start` of the calling process (`self` is `/proc/self/pagemap`) for pages
    /// in all of `categories`, filling `regions`; returns how many were filled and where the walk stopped
    /// (before the end when `regions` ran out).
    ///
    /// The corresponding C function is `ioctl(fd, PAGEMAP_SCAN, &arg)` with `category_mask` and
    /// `return_mask` both `categories`.
    public func pagemapScan(
        _ start: UnsafeRawPointer, length: Int, categories: PageCategories, flags: PagemapScanFlags = [],
        into regions: UnsafeMutableBufferPointer<PageRegion>
    ) throws(Errno) -> (count: Int, walkEnd: UInt64) {
        let begin = UInt64(UInt(bitPattern: start))
        var arg = ps_pm_scan_arg(
            size: UInt64(MemoryLayout<ps_pm_scan_arg>.size), flags: flags.rawValue,
            start: begin, end: begin + UInt64(length), walk_end: 0,
            vec: UInt64(UInt(bitPattern: regions.baseAddress)), vec_len: UInt64(regions.count), max_pages: 0,
            category_inverted: 0, category_mask: categories.rawValue, category_anyof_mask: 0,
            return_mask: categories.rawValue)
        let count = try valueOrErrno { ps_ioctl_ptr(rawValue, PS_PAGEMAP_SCAN, &arg) }
        return (Int(count), arg.walk_end)
    }
}
