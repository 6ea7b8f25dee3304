// swift-tools-version: 5.9
// Stand-in for ordo-one/swift-runtime-interposer, which is not mirrored on this machine.
//
// ordo-one/benchmark 1.38.1 adds that package as a dependency on Linux with Swift 6.3 and, with its
// "RuntimeInterposer" trait on, links the product `SwiftRuntimeInterposerSwift`. When the environment
// variable RUNTIME_INTERPOSER_LOCAL_PATH is set it uses `.package(path:)` instead, so run.sh points it
// here. The identity (directory name `swift-runtime-interposer`) and product name must match exactly.
//
// The product's module is deliberately NOT called `SwiftRuntimeInterposerSwift`: benchmark's sources use
// `canImport(SwiftRuntimeInterposerSwift)` to pick the interposer's ARC-counting API, which this empty stub
// does not have. Our Package.swift also leaves the RuntimeInterposer trait off, so nothing links this at all;
// it only has to resolve. Consequence: ARC metrics (retainCount, ...) are not available; we do not use them.
import PackageDescription

let package = Package(
    name: "swift-runtime-interposer",
    products: [
        .library(name: "SwiftRuntimeInterposerSwift", targets: ["SwiftRuntimeInterposerStub"]),
    ],
    targets: [
        .target(name: "SwiftRuntimeInterposerStub"),
    ]
)
