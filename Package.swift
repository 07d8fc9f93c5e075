// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "plateseg",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "plateseg", targets: ["plateseg"]),
        .executable(name: "plateseg-bench", targets: ["plateseg-bench"]),
        .executable(name: "plateseg-fuzz", targets: ["plateseg-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.21.0"),
        .package(url: "https://github.com/yaslab/CSV.swift", from: "2.5.2"),
        // FilePath: Foundation's NSString path methods trap on "//" before a letter beyond ASCII.
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),

        .target(name: "Imaging", dependencies: ["CZstd", "CPNG", "CTIFF", .product(name: "SystemPackage", package: "swift-system")], swiftSettings: strict),
        .target(name: "Models", dependencies: ["Imaging", "CDNNL"], swiftSettings: strict),
        .target(
            name: "JobStore",
            dependencies: [
                "Imaging",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict),
        .target(name: "Coordinator", dependencies: ["JobStore", "Imaging", .product(name: "CSV", package: "CSV.swift")], swiftSettings: strict),
        .target(
            name: "Worker",
            dependencies: ["JobStore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(name: "Ensemble", dependencies: ["Imaging", .product(name: "CSV", package: "CSV.swift")], swiftSettings: strict),
        // What the command line and the benchmarks share: merge jobs, stale results, evaluation,
        // calibration, the HTML report.
        .target(
            name: "Pipeline", dependencies: ["Worker", "Ensemble", "JobStore", "Models", "Imaging", .product(name: "CSV", package: "CSV.swift")],
            swiftSettings: strict),
        .executableTarget(
            name: "plateseg",
            dependencies: [
                "Imaging", "Models", "JobStore", "Coordinator", "Worker", "Ensemble", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "plateseg-bench",
            dependencies: [
                "Imaging", "Models", "JobStore", "Coordinator", "Worker", "Ensemble", "Pipeline", "CTIFF", "PlateFixtures",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // libFuzzer targets for every parser of outside bytes (`make fuzz`); built normally, it
        // replays a corpus through them (the regression run of `make test`).
        .executableTarget(
            name: "plateseg-fuzz",
            dependencies: ["Imaging", "Models", "JobStore", "Coordinator", "Ensemble", "Pipeline", "CTIFF", "PlateFixtures"],
            swiftSettings: strict),

        // A worker process for the queue's own tests: the real loop, with job kinds the tests control.
        .executableTarget(
            name: "plateseg-testworker",
            dependencies: ["Worker", "JobStore", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Support/plateseg-testworker",
            swiftSettings: strict),

        // What the tests, the benchmarks and the fuzzer's seeds build plates and databases with: the
        // drivers and their scratch databases, a TIFF writer, the chaos harness. No test framework.
        .target(name: "PlateFixtures", dependencies: ["JobStore", "Imaging", "CTIFF"], swiftSettings: strict),

        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "CTIFF", "PlateFixtures"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Imaging"], resources: [.copy("Fixtures")], swiftSettings: strict),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "Imaging", "PlateFixtures", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: strict),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "JobStore", "Imaging", "PlateFixtures"], swiftSettings: strict),
        .testTarget(name: "WorkerTests", dependencies: ["Worker", "Coordinator", "JobStore", "Imaging", "plateseg-testworker", "PlateFixtures"], swiftSettings: strict),
        .testTarget(name: "EndToEndTests", dependencies: ["plateseg", "PlateFixtures", "Imaging", "CTIFF"], swiftSettings: strict),
        .testTarget(
            name: "PipelineTests", dependencies: ["Pipeline", "Ensemble", "JobStore", "Imaging", "PlateFixtures", .product(name: "CSV", package: "CSV.swift")],
            swiftSettings: strict),
        .testTarget(name: "EnsembleTests", dependencies: ["Ensemble", "Imaging"], resources: [.copy("Fixtures")], swiftSettings: strict),
    ]
)
