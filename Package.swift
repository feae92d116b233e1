// swift-tools-version: 6.2
import PackageDescription

/// One set of Swift settings for every target: Swift 6 language mode comes with the
/// tools version; these two upcoming features keep existentials and imports explicit.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Weir",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "weir-cloud", targets: ["weir-cloud"]),
        .executable(name: "weir-edge", targets: ["weir-edge"]),
        .executable(name: "weir-sim", targets: ["weir-sim"]),
        // For fuzz/ (a separate package that depends on this one by path).
        .library(name: "WeirCore", targets: ["WeirCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML"]),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // Already in the graph through swift-configuration's YAML trait; config files are parsed with it directly.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),

        // The domain: readings, time, windows, the batch codec, payload formats, filters. No I/O.
        .target(
            name: "WeirCore",
            exclude: ["Codec/FORMAT.md"],
            swiftSettings: swiftSettings,
            // The core imports no Foundation; Double's rounding still needs libm.
            linkerSettings: [.linkedLibrary("m")]
        ),

        // The HTTP API's bodies (`WindowsAnswer`, `BatchAnswer`): one definition, written by
        // weir-cloud and read by weir-sim, the tests and the benchmarks. Codable, no I/O.
        .target(
            name: "WeirWire",
            dependencies: ["WeirCore"],
            swiftSettings: swiftSettings
        ),

        // Adapters around the core.
        .target(
            name: "WeirCompression",
            dependencies: ["WeirCore", "CZstd", "CZlib"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WeirMQTT",
            dependencies: [
                "CMosquitto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WeirSupport",
            dependencies: [
                "WeirCore",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WeirCloud",
            dependencies: [
                "WeirCore", "WeirCompression", "WeirSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WeirEdge",
            dependencies: [
                "WeirCore", "WeirCompression", "WeirMQTT", "WeirSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "WeirSim",
            dependencies: [
                "WeirCore", "WeirMQTT", "WeirSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Thin executables: parse arguments, start services.
        .executableTarget(
            name: "weir-cloud",
            dependencies: ["WeirCloud", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "weir-edge",
            dependencies: ["WeirEdge", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "weir-sim",
            dependencies: [
                "WeirSim", "WeirCore", "WeirMQTT", "WeirSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmarks (bench/run NAME): one executable per area, release builds.
        .executableTarget(
            name: "weir-bench-cloud",
            dependencies: [
                "WeirCore", "WeirCompression", "WeirCloud", "WeirTestSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "bench/cloud",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "weir-bench-codec",
            dependencies: ["WeirCore", "WeirCompression"],
            path: "bench/codec",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "weir-bench-edge",
            dependencies: [
                "WeirCore", "WeirCompression", "WeirEdge", "WeirCloud", "WeirMQTT", "WeirTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/edge",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "weir-bench-formats",
            dependencies: ["WeirCore"],
            path: "bench/formats",
            swiftSettings: swiftSettings
        ),

        // Shared helpers for tests: free ports, temporary files, real mosquitto and
        // weir-cloud processes started and always stopped, the cloud's API over HTTP.
        .target(
            name: "WeirTestSupport",
            dependencies: [
                "WeirCore", "WeirWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/WeirTestSupport",
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "WeirCoreTests", dependencies: ["WeirCore", "WeirCompression"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WeirCloudTests",
            dependencies: [
                "WeirCloud", "WeirCore", "WeirCompression", "WeirSupport", "WeirTestSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WeirEdgeTests",
            dependencies: [
                "WeirEdge", "WeirCloud", "WeirCore", "WeirCompression", "WeirMQTT", "WeirSupport", "WeirTestSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WeirSimTests",
            dependencies: [
                "WeirSim", "WeirCloud", "WeirCore", "WeirMQTT", "WeirSupport", "WeirTestSupport", "WeirWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
