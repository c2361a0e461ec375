// swift-tools-version:6.1
// Tern: a WhatsApp-style messaging backend. One process, one LMDB store.
//
// Dependencies point one way: tern (executable) -> TernServer -> TernAPI -> TernAuth ->
// TernStore -> TernLMDB/TernCore; the C libraries are wrapped once each (CLMDB by
// TernLMDB, CSodium by TernSodium). Benchmarks build only when TERN_BENCH=1 is set, so
// the cold CI build stays short.
import Foundation
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    // Exclusive access to class properties is checked at run time in debug builds (every
    // test run) and not in release builds: the checks were 4.5 % of the relay's CPU
    // (perf, docs/benchmarks.md). The compile-time checks stay on everywhere.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

var products: [Product] = [
    .executable(name: "tern", targets: ["tern"]),
]

var targets: [Target] = [
    // C libraries from Debian's -dev packages.
    .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
    // jemalloc, linked into the `tern` executable only: 8 % less CPU per relayed message than
    // glibc's malloc on average over interleaved runs (docs/benchmarks.md), same memory per
    // idle connection.
    .systemLibrary(name: "CJemalloc", pkgConfig: "jemalloc", providers: [.apt(["libjemalloc-dev"])]),
    .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
    .systemLibrary(
        name: "CAV", path: "Media/CAV", pkgConfig: "libavformat",
        providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev"])]),

    // Owners of all unsafe code for their C library.
    .target(name: "TernLMDB", dependencies: ["CLMDB"], swiftSettings: strict),
    .target(name: "TernSodium", dependencies: ["CSodium"], swiftSettings: strict),

    // Shared value types: ids, time, errors, validation rules.
    .target(name: "TernCore", swiftSettings: strict),

    // Wire formats: strict JSON parser/writer, WebSocket frame envelope.
    .target(name: "TernWire", dependencies: ["TernCore"], swiftSettings: strict),

    // Every persisted byte layout, the group-commit store facade.
    .target(
        name: "TernStore",
        dependencies: [
            "TernLMDB", "TernCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ],
        swiftSettings: strict
    ),

    // Phone login, PASETO tokens, sessions, OTP senders.
    .target(
        name: "TernAuth",
        dependencies: [
            "TernStore", "TernSodium", "TernCore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        swiftSettings: strict
    ),

    // Store-and-forward: sending, mailboxes, device sessions, receipts, typing, presence.
    .target(
        name: "TernRelay",
        dependencies: [
            "TernStore", "TernCore", "TernWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: strict
    ),

    // The connection layer: one port for HTTP (Hummingbird) and WebSocket (NIO handlers,
    // no task per frame), authentication at the upgrade.
    .target(
        name: "TernGateway",
        dependencies: [
            "TernRelay", "TernAuth", "TernCore", "TernWire",
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: strict
    ),

    // A small NIO WebSocket client for tests and the load tool.
    .target(
        name: "TernWSClient",
        dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ],
        swiftSettings: strict
    ),

    // Configuration keys, file/env/flag layering, validation.
    .target(name: "TernConfig", dependencies: ["TernCore"], swiftSettings: strict),

    // The HTTP surface (Hummingbird 2): envelope, middleware, routes.
    .target(
        name: "TernAPI",
        dependencies: [
            "TernAuth", "TernStore", "TernCore", "TernRelay", "TernWire", "TernMedia",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: strict
    ),

    // Assembles store, auth and API into services with an ordered start and shutdown.
    .target(
        name: "TernServer",
        dependencies: [
            "TernAPI", "TernAuth", "TernStore", "TernConfig", "TernCore", "TernLMDB", "TernRelay", "TernGateway", "TernMedia",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: strict
    ),

    // The media worker (Media/TernMedia): libav probing and thumbnails in-process, the
    // content-addressed blob store. Owns every unsafe libav call.
    .target(
        name: "TernMedia",
        dependencies: [
            "CAV", "TernSodium", "TernCore", "TernStore",
            // SHA-256 of uploads: BoringSSL's uses the CPU's SHA instructions (~1.8 GB/s
            // here), libsodium's is portable C and would cap uploads.
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ],
        path: "Media/TernMedia",
        swiftSettings: strict
    ),

    // Operator tools (Ops/TernOps): read-only inspection of a live store in short read
    // transactions, hot backup/restore, integrity check, and the admin API client. The
    // `tern` subcommands over it are thin.
    .target(
        name: "TernOps",
        dependencies: [
            "TernStore", "TernLMDB", "TernCore", "TernConfig", "TernRelay",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ],
        path: "Ops/TernOps",
        swiftSettings: strict
    ),

    // The thin `tern` executable: subcommands, logging and Prometheus bootstrap.
    .executableTarget(
        name: "tern",
        dependencies: [
            "TernServer", "TernConfig", "TernAuth", "TernStore", "TernOps", "CJemalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: strict
    ),

    // Tests: one target per source target, plus end-to-end tests against the real binary.
    .target(name: "TernTestSupport", path: "Tests/TernTestSupport", swiftSettings: strict),
    .testTarget(name: "TernLMDBTests", dependencies: ["TernLMDB", "TernTestSupport"], swiftSettings: strict),
    .testTarget(name: "TernSodiumTests", dependencies: ["TernSodium"], swiftSettings: strict),
    .testTarget(name: "TernCoreTests", dependencies: ["TernCore"], swiftSettings: strict),
    .testTarget(name: "TernMediaTests", dependencies: ["TernMedia", "TernTestSupport"], swiftSettings: strict),
    .testTarget(name: "TernWireTests", dependencies: ["TernWire", "TernTestSupport"], swiftSettings: strict),
    .testTarget(name: "TernStoreTests", dependencies: ["TernStore", "TernLMDB", "TernCore", "TernTestSupport"], swiftSettings: strict),
    .testTarget(
        name: "TernAuthTests",
        dependencies: ["TernAuth", "TernStore", "TernSodium", "TernCore", "TernTestSupport"],
        resources: [.copy("Fixtures")],
        swiftSettings: strict
    ),
    .testTarget(name: "TernConfigTests", dependencies: ["TernConfig", "TernCore", "TernTestSupport"], swiftSettings: strict),
    .testTarget(
        name: "TernServerTests",
        dependencies: [
            "TernServer", "TernAPI", "TernAuth", "TernStore", "TernConfig", "TernCore", "TernTestSupport", "tern",
            "TernWSClient", "TernRelay", "TernWire", "TernOps", "TernLMDB", "TernMedia", "TernGateway",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: strict
    ),
]

if ProcessInfo.processInfo.environment["TERN_BENCH"] == "1" {
    products.append(.executable(name: "tern-bench", targets: ["TernBench"]))
    targets.append(
        .executableTarget(
            name: "TernBench",
            dependencies: [
                "TernLMDB", "TernWSClient", "TernStore", "TernCore", "TernMedia",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/TernBench", swiftSettings: strict)
    )
}

let package = Package(
    name: "tern",
    platforms: [.macOS(.v14)],
    products: products,
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    ],
    targets: targets
)
