import Foundation
@testable import PageStateKernel
import SystemPackage
import Testing

@Suite struct KernelFeaturesTests {
    let features = KernelFeatures.probe()

    @Test func pageSizeIsSysconf() {
        #expect(features.pageSize == sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test func kernelVersionIsTheRelease() throws {
        let release = try readProcFile("/proc/sys/kernel/osrelease")
        #expect(features.kernelVersion == release.trimmingCharacters(in: .whitespacesAndNewlines))
        let numbers = features.kernelVersion.split(separator: ".").prefix(2).map { Int($0) }
        #expect(numbers.count == 2 && numbers.allSatisfy { $0 != nil })
    }

    @Test func sysctlsMatchProc() throws {
        let mapCount = try readProcFile("/proc/sys/vm/max_map_count")
        #expect(features.maxMapCount == Int(mapCount.trimmingCharacters(in: .newlines)))
        if let mode = features.transparentHugepages { #expect(["always", "madvise", "never"].contains(mode)) }
    }

    @Test func memfdSealsAgreeWithShrinkingASealedMemfd() throws {
        let page = Int64(features.pageSize)
        guard let fd = try? FileDescriptor.memfd(name: "seal-test") else {
            #expect(!features.memfd && !features.memfdSeals)
            return
        }
        defer { try? fd.close() }
        #expect(features.memfd)
        try fd.resize(to: 2 * page)
        let sealed = (try? fd.addSeals(.shrink)) != nil
        #expect(features.memfdSeals == sealed)
        guard sealed else { return }
        #expect(try fd.seals().contains(.shrink))
        #expect(throws: Errno.notPermitted) { try fd.resize(to: page) }
        #expect(try fd.stat().size == 2 * page)
    }

    @Test func userfaultfdProbeAgreesWithRegistering() throws {
        let opened = try? openUserfaultfd()
        defer { try? opened?.close() }
        #expect(features.userfaultfd == (opened != nil))
        guard features.userfaultfdWriteProtectAsync, let uffd = opened else { return }
        #expect(features.userfaultfdWriteProtectUnpopulated)
        let granted = try uffd.uffdAPI(features: [.writeProtectAsync, .writeProtectUnpopulated])
        #expect(granted.isSuperset(of: [.writeProtectAsync, .writeProtectUnpopulated]))
        let page = features.pageSize
        let memory = try mapMemory(length: page, protection: [.read, .write], flags: [.private, .anonymous])
        defer { try? unmapMemory(memory, length: page) }
        try uffd.uffdRegister(memory, length: page, mode: .writeProtect)
        #expect(throws: Errno.invalidArgument) { try uffd.uffdAPI(features: []) }  // the handshake happens once
    }

    @Test func pagemapScanReportsExactlyTheWrittenPage() throws {
        guard features.asyncWriteTracking else { return }
        let page = features.pageSize
        let uffd = try openUserfaultfd()
        defer { try? uffd.close() }
        _ = try uffd.uffdAPI(features: [.writeProtectAsync, .writeProtectUnpopulated])
        let memory = try mapMemory(length: 4 * page, protection: [.read, .write], flags: [.private, .anonymous])
        defer { try? unmapMemory(memory, length: 4 * page) }
        memory.storeBytes(of: 1, as: UInt8.self)  // written before tracking starts
        try uffd.uffdRegister(memory, length: 4 * page, mode: .writeProtect)
        let pagemap = try FileDescriptor.open("/proc/self/pagemap", .readOnly, options: .closeOnExec)
        defer { try? pagemap.close() }
        var regions = [PageRegion](repeating: PageRegion(), count: 4)
        func scan() throws -> [PageRegion] {
            let (count, walkEnd) = try regions.withUnsafeMutableBufferPointer { buffer in
                try pagemap.pagemapScan(memory, length: 4 * page, categories: .written,
                                        flags: [.writeProtectMatching, .checkWriteProtectAsync], into: buffer)
            }
            #expect(walkEnd == UInt64(UInt(bitPattern: memory)) + UInt64(4 * page))
            return Array(regions[..<count])
        }
        _ = try scan()  // protects everything
        (memory + 2 * page).storeBytes(of: 7, as: UInt8.self)
        let written = try scan()
        let start = UInt64(UInt(bitPattern: memory + 2 * page))
        #expect(written.map { [$0.start, $0.end] } == [[start, start + UInt64(page)]])
        #expect(written.allSatisfy { PageCategories(rawValue: $0.categories) == .written })
        #expect(try scan().isEmpty)
    }

    @Test func jsonHasTheFiveBooleansAndRoundTrips() throws {
        struct Required: Decodable {
            var memfd_seals, userfaultfd_wp_async, pagemap_scan, io_uring, seccomp_filter, pidfd_exit_status: Bool
        }
        let data = try JSONEncoder().encode(features)
        let required = try JSONDecoder().decode(Required.self, from: data)
        #expect(required.memfd_seals == features.memfdSeals)
        #expect(required.userfaultfd_wp_async == features.userfaultfdWriteProtectAsync)
        #expect(required.pagemap_scan == features.pagemapScan)
        #expect(required.io_uring == features.ioUring)
        #expect(required.seccomp_filter == features.seccompFilter)
        #expect(required.pidfd_exit_status == features.pidfdExitStatus)
        #expect(features.pidfdExitStatus == KernelFeatures.pidfdExitStatusAvailable)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object.keys.contains("io_uring_disabled_sysctl"))  // null when absent, never omitted
        #expect(object["fallbacks"] is [String: Any])
        #expect(try JSONDecoder().decode(KernelFeatures.self, from: data) == features)
    }

    @Test func fallbacksNameWhatReplacesEachMissingFeature() {
        var none = KernelFeatures(kernelVersion: "6.1.0", pageSize: 4096)
        #expect(none.fallbacks[.memfd] == "unlinked file in a directory")
        #expect(none.fallbacks[.memfdSeals] == nil)
        #expect(none.fallbacks[.userfaultfd] == nil)
        #expect(none.fallbacks[.pagemapScan] == "mprotect + SIGSEGV tracker")
        #expect(none.fallbacks[.ioUring] == "pwrite + fsync writer")
        #expect(none.fallbacks[.seccompFilter]?.hasPrefix("no syscall filter") == true)
        #expect(none.fallbacks[.pidfdExitStatus]?.hasPrefix("the launcher reaps workers") == true)
        none.memfd = true
        #expect(none.fallbacks[.memfdSeals] == "unsealed memfd (a hostile holder could shrink it)")
        for feature in KernelFeature.allCases { none.set(feature) }
        #expect(none.fallbacks.isEmpty && none.asyncWriteTracking)
    }

    /// A userfaultfd as an unprivileged process may have it when `vm.unprivileged_userfaultfd` is 0.
    private func openUserfaultfd() throws(Errno) -> FileDescriptor {
        do { return try .userfaultfd(flags: [.closeOnExec, .nonBlocking]) } catch .notPermitted {
            return try .userfaultfd(flags: [.closeOnExec, .nonBlocking, .userModeOnly])
        }
    }
}

extension KernelFeatures {
    fileprivate mutating func set(_ feature: KernelFeature) {
        switch feature {
        case .memfd: memfd = true
        case .memfdSeals: memfdSeals = true
        case .userfaultfd: userfaultfd = true
        case .userfaultfdWriteProtectAsync: userfaultfdWriteProtectAsync = true
        case .userfaultfdWriteProtectUnpopulated: userfaultfdWriteProtectUnpopulated = true
        case .pagemapScan: pagemapScan = true
        case .ioUring: ioUring = true
        case .seccompFilter: seccompFilter = true
        case .pidfdExitStatus: pidfdExitStatus = true
        }
    }
}
