// swift-tools-version:6.0
// DiffusionRestore: diffusion-based image restoration on the CPU, in Swift.
//
// Speed flags (-Ounchecked, -target-cpu haswell) are passed by the Makefile, not here, so that other
// packages can depend on these libraries; a plain `swift build` gives the same results, only slower.
import PackageDescription

let package = Package(
    name: "DiffusionRestore",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Networks", targets: ["Networks"]),
        .library(name: "Operators", targets: ["Operators"]),
        .library(name: "Methods", targets: ["Methods"]),
        .library(name: "Tiling", targets: ["Tiling"]),
        .library(name: "Restoration", targets: ["Restoration"]),
        .library(name: "Service", targets: ["Service"]),
        .executable(name: "restore", targets: ["restore"]),
        .executable(name: "restore-serve", targets: ["restore-serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `restore serve`: the HTTP service (Hummingbird 2 on SwiftNIO).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.14.0"),
    ],
    targets: [
        // oneDNN 2.6 (Debian's libdnnl-dev), C API: convolutions and matrix products.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        // FFTW 3 (Debian's libfftw3-dev), single precision: FFT-based blur operators with any kernel.
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW"),
        // CPU feature checks and a parallel-for on the OpenMP pool that oneDNN already uses.
        .target(
            name: "CEngineSupport",
            path: "Sources/CEngineSupport",
            linkerSettings: [.linkedLibrary("gomp")]
        ),
        // libpng / libjpeg-turbo behind setjmp-safe C wrappers (their error paths longjmp).
        .target(
            name: "CImageCodecs",
            path: "Sources/CImageCodecs",
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("webp"), .linkedLibrary("webpmux")]
        ),
        .target(name: "Engine", dependencies: ["CDNNL", "CEngineSupport"]),
        .target(name: "ImageIO", dependencies: ["CImageCodecs"]),
        // Safe readers for PyTorch .pt/.pth/.ckpt (zip and legacy pickles) and safetensors; never runs code.
        .target(name: "Checkpoints", dependencies: ["Engine"]),
        // Diffusion networks (ADM and DDPM UNets, …) built from official parameter names; no sampler logic.
        .target(name: "Networks", dependencies: ["Engine", "Checkpoints"]),
        // Degradation operators A with A† (pure functions on tensors; they never touch networks).
        .target(name: "Operators", dependencies: ["Engine", "CFFTW"]),
        // Samplers (DDNM, …): functions of a noise-prediction closure and a schedule; they never know the network.
        .target(name: "Methods", dependencies: ["Engine", "Operators"]),
        // Every window: USDR's mask-shift windows and HiR pyramid with their constraints, the tiled ε,
        // ResShift's chopper, one blend canvas.
        .target(name: "Tiling", dependencies: ["Engine", "Operators", "Methods"]),
        // The public API the CLI, the service and batch workers share: one pipeline per method with Codable
        // options, typed inputs and results, one report schema, events and cancellation, models loaded once, jobs.
        .target(name: "Restoration", dependencies: ["Engine", "ImageIO", "Checkpoints", "Networks", "Operators", "Methods", "Tiling"]),
        // The HTTP service and its web page: routes that translate HTTP to the Restoration library, a bounded job
        // queue with one worker, Server-Sent Events; no restoration logic.
        .target(
            name: "Service",
            dependencies: [
                "Restoration", "ImageIO", "Engine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "restore",
            dependencies: [
                "Engine", "ImageIO", "Checkpoints", "Networks", "Operators", "Methods", "Restoration", "CommandLineSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The `main` our executables share: process set-up and one-line errors.
        .target(name: "CommandLineSupport", dependencies: ["Restoration", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // `restore serve` runs this binary: the service without SwiftNIO in the command-line tool.
        .executableTarget(
            name: "restore-serve",
            dependencies: ["Service", "Restoration", "Engine", "CommandLineSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "engine-bench", dependencies: ["Engine", "Networks", "Methods", "ImageIO", "Tiling", "Restoration"], path: "Tools/bench/EngineBench"),
        .executableTarget(name: "checkpoint-bench", dependencies: ["Checkpoints", "Engine"], path: "Tools/bench/CheckpointBench"),
        // libFuzzer harness for the checkpoint readers (`make fuzz`); a plain build makes it a corpus replayer.
        .executableTarget(name: "checkpoint-fuzz", dependencies: ["Checkpoints"], path: "Tools/fuzz/CheckpointFuzz"),
        .testTarget(name: "EngineTests", dependencies: ["Engine"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Engine"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MethodsTests", dependencies: ["Methods", "Tiling", "Operators", "Networks", "Checkpoints", "Engine"], resources: [.copy("Fixtures")]),
        .testTarget(name: "NetworksTests", dependencies: ["Networks", "Checkpoints", "Engine", "Methods"], resources: [.copy("Fixtures")]),
        .testTarget(name: "RestorationTests", dependencies: ["Restoration", "Operators", "Engine", "ImageIO", "Checkpoints", "Methods"], resources: [.copy("Fixtures")]),
        // Runs the built `restore` binary as a user would: exit codes, one-line errors, no partial output.
        // The service in process on a loopback port, through URLSession: every route, limit and bad input.
        .testTarget(name: "ServiceTests", dependencies: ["Service", "Restoration", "ImageIO", "Engine"]),
        .testTarget(name: "CLITests", dependencies: ["restore", "restore-serve", "ImageIO", "Checkpoints", "Engine", "Networks", "Restoration"], exclude: ["Fixtures"]),
    ]
)
