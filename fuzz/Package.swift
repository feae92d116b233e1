// swift-tools-version: 6.2
// libFuzzer targets for the batch codec and the edge's filter chain. Separate from the root package so the
// fuzzer build (its own scratch path, sanitizer flags) only compiles WeirCore.
// Run it with `fuzz/run [RUNS]`.
import PackageDescription

let package = Package(
    name: "WeirFuzz",
    dependencies: [
        .package(name: "Weir", path: ".."),
    ],
    targets: [
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "weir-codec-fuzz",
            dependencies: ["CFuzzDriver", .product(name: "WeirCore", package: "Weir")],
            path: "Sources/WeirCodecFuzz",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "weir-filter-fuzz",
            dependencies: ["CFuzzDriver", .product(name: "WeirCore", package: "Weir")],
            path: "Sources/WeirFilterFuzz",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ]
)
