// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
  name: "kensho-bench",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "KenshoProtocol", targets: ["KenshoProtocol"]),
    .library(name: "KenshoBus", targets: ["KenshoBus"]),
    .library(name: "KenshoScenario", targets: ["KenshoScenario"]),
    .library(name: "KenshoVerdict", targets: ["KenshoVerdict"]),
    .library(name: "KenshoAdapterProtocol", targets: ["KenshoAdapterProtocol"]),
    .library(name: "KenshoHarness", targets: ["KenshoHarness"]),
    .library(name: "KenshoRelay", targets: ["KenshoRelay"]),
    .executable(name: "kensho-bench", targets: ["KenshoBenchCLI"]),
    .executable(name: "kensho-ref-adapter", targets: ["KenshoReferenceAdapter"]),
    .executable(name: "kensho-bus-bench", targets: ["KenshoBusBenchmark"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.6.0"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
  ],
  targets: [
    .target(name: "KenshoProtocol", swiftSettings: strict),
    .target(
      name: "KenshoBus",
      dependencies: [
        "KenshoProtocol",
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "HeapModule", package: "swift-collections"),
      ],
      swiftSettings: strict
    ),
    .systemLibrary(
      name: "CJemalloc",
      pkgConfig: "jemalloc",
      providers: [.apt(["libjemalloc-dev"])]
    ),
    .target(
      name: "KenshoRelay",
      dependencies: [
        "KenshoBus", "KenshoProtocol",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOWebSocket", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .target(name: "KenshoMemory", dependencies: ["CJemalloc"], swiftSettings: strict),
    .executableTarget(
      name: "KenshoBusBenchmark",
      dependencies: [
        "KenshoBus", "KenshoMemory", "KenshoHarness", "KenshoScenario",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "KenshoScenario", dependencies: ["KenshoProtocol"],
      exclude: ["Resources/kensho-scenario-1.schema.json"],
      swiftSettings: strict),
    .target(name: "KenshoVerdict", dependencies: ["KenshoProtocol", "KenshoScenario"], swiftSettings: strict),
    .target(
      name: "KenshoAdapterProtocol", dependencies: ["KenshoProtocol", "KenshoScenario"], swiftSettings: strict),
    .target(
      name: "KenshoHarness",
      dependencies: [
        "KenshoBus", "KenshoScenario", "KenshoAdapterProtocol", "KenshoMemory", "KenshoVerdict", "KenshoRelay",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "KenshoReport", dependencies: ["KenshoHarness", "KenshoVerdict"], swiftSettings: strict),
    .executableTarget(
      name: "KenshoBenchCLI",
      dependencies: [
        "KenshoReport", "KenshoHarness", "KenshoScenario", "KenshoVerdict", "KenshoRelay", "KenshoAdapterProtocol",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "KenshoReferenceAdapter",
      dependencies: ["KenshoBus", "KenshoProtocol", "KenshoMemory", "KenshoAdapterProtocol"],
      swiftSettings: strict),
    .testTarget(name: "KenshoScenarioTests", dependencies: ["KenshoScenario"], swiftSettings: strict),
    .testTarget(
      name: "KenshoHarnessTests",
      dependencies: [
        "KenshoHarness", "KenshoScenario", "KenshoReport", "KenshoVerdict", "KenshoRelay", "KenshoAdapterProtocol",
      ],
      swiftSettings: strict),
    .testTarget(name: "KenshoProtocolTests", dependencies: ["KenshoProtocol"], swiftSettings: strict),
    .testTarget(
      name: "KenshoAdapterProtocolTests", dependencies: ["KenshoAdapterProtocol", "KenshoProtocol", "KenshoScenario"],
      swiftSettings: strict),
    .testTarget(
      name: "KenshoVerdictTests", dependencies: ["KenshoVerdict", "KenshoScenario", "KenshoProtocol"],
      swiftSettings: strict),
    .testTarget(
      name: "KenshoRelayTests", dependencies: ["KenshoRelay", "KenshoBus", "KenshoProtocol"],
      swiftSettings: strict),
    .testTarget(
      name: "KenshoBusTests",
      dependencies: ["KenshoBus", "KenshoMemory"],
      swiftSettings: strict
    ),
  ]
)
