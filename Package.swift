// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "PageState",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PageState", targets: ["PageState"]),
        .executable(name: "pagestate", targets: ["pagestate"]),
        .executable(name: "pagestate-worker", targets: ["pagestate-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Kernel definitions Debian's headers lack, variadic/macro shims, and C-only code.
        .target(
            name: "CPageState",
            linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("seccomp")]
        ),
        // One thin wrapper per syscall, swift-system style.
        .target(
            name: "PageStateKernel",
            dependencies: ["CPageState", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Allocator, PageDelta, PageMap, layers.
        .target(
            name: "PageStateMemory",
            dependencies: ["PageStateKernel", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Guest memories mapped zero-copy, dirty-page tracking, commit and rollback.
        .target(
            name: "PageStateTracking",
            dependencies: ["PageStateMemory", "PageStateKernel", "CPageState", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // State manager: commits, overlay files, checkpoints, manifests, merge, recovery.
        .target(
            name: "PageStateStore",
            dependencies: [
                "PageStateMemory", "PageStateKernel",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Sandbox shim: launcher, worker processes, worker runtime, pool, in-process executor.
        .target(
            name: "PageStateSandbox",
            dependencies: ["PageStateTracking", "PageStateMemory", "PageStateKernel", "CPageState",
                           .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "DequeModule", package: "swift-collections")]
        ),
        // The default worker's entry points (demo workload and hostile guests for the tests).
        .target(name: "PageStateWorkloads", dependencies: ["PageStateSandbox", "CPageState"]),
        // Release builds are fully static (Swift runtime, glibc, libseccomp, liburing): a launcher and its
        // workers then map one file in 10 regions instead of 8 files in 49, so each fork and each exit
        // takes that many fewer of the locks that reverse-map walks over pages shared by every worker
        // hold (design/performance.md, session 18). Debug builds cannot: the test build links the
        // testing libraries into executables, and those exist only as shared libraries.
        .executableTarget(name: "pagestate-worker", dependencies: ["PageStateSandbox", "PageStateWorkloads"],
                          linkerSettings: [.unsafeFlags(["-static-executable"], .when(configuration: .release))]),
        // The crash-injection soak behind `pagestate soak crash` and the crash tests.
        .target(name: "PageStateSoak", dependencies: ["PageStateStore", "PageStateSandbox", .product(name: "SystemPackage", package: "swift-system")]),
        // The umbrella module execution layers import.
        .target(name: "PageState", dependencies: ["PageStateMemory", "PageStateKernel", "PageStateTracking", "PageStateStore", "PageStateSandbox"]),
        // Side-by-side measurement suites behind `pagestate bench`.
        .target(
            name: "PageStateBench",
            dependencies: [
                "PageStateMemory", "PageStateKernel", "PageStateTracking", "PageStateStore", "CPageState",
                "PageStateSandbox", "PageStateWorkloads",
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "pagestate",
            dependencies: [
                "PageState", "PageStateBench", "PageStateSoak", "pagestate-worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Second process for cross-process attach tests: receives an allocator over SCM_RIGHTS.
        .executableTarget(name: "pagestate-test-helper", dependencies: ["PageState"]),
        .testTarget(name: "PageStateCLITests", dependencies: ["pagestate"]),
        // Shared by the test targets: property checks that fail on thrown errors.
        .target(
            name: "PropertyChecking", dependencies: [.product(name: "PropertyBased", package: "swift-property-based")],
            path: "Tests/PropertyChecking"
        ),
        .testTarget(
            name: "PageStateSandboxTests",
            dependencies: [
                "PageState", "PageStateWorkloads", "PageStateSoak", "pagestate-worker",
                "PropertyChecking",
            ]
        ),
        .testTarget(
            name: "PageStateKernelTests",
            dependencies: ["PageStateKernel", "PropertyChecking"]
        ),
        .testTarget(
            name: "PageStateStoreTests",
            dependencies: [
                "PageState", "PageStateSoak", "pagestate",
                "PropertyChecking",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "PageStateMemoryTests",
            dependencies: [
                "PageState", "pagestate-test-helper",
                "PropertyChecking",
            ]
        ),
    ]
)
