// swift-tools-version: 6.1
// Microbenchmarks of PageState's allocator, PageDelta and checkpoints (next to LMDB), using package-benchmark.
// Run with ./run.sh (it sets RUNTIME_INTERPOSER_LOCAL_PATH, which this package needs to resolve on Linux
// with Swift 6.3); see README.md.
import PackageDescription

let package = Package(
    name: "PageStateBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "PageState", path: ".."),
        // Traits: only "MallocInterposer" (the malloc-interposer package, no jemalloc needed), which gives
        // the malloc count metrics. "RuntimeInterposer" (a default trait) is left off: the real
        // swift-runtime-interposer is not available here and LocalPackages/ holds an empty stand-in.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .executableTarget(
            name: "AllocatorBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PageState", package: "PageState"),
            ],
            path: "Benchmarks/AllocatorBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "DeltaBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PageState", package: "PageState"),
            ],
            path: "Benchmarks/DeltaBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // LMDB, the baseline of CheckpointBenchmarks.
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB", providers: [.apt(["liblmdb-dev"])]),
        .executableTarget(
            name: "CheckpointBenchmarks",
            dependencies: [
                "CLMDB",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "PageState", package: "PageState"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Benchmarks/CheckpointBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
