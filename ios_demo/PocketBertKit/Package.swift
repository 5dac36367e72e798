// swift-tools-version:6.0
// PocketBertKit: everything the pocketbert iOS app does that needs no phone (manifest, WordPiece
// tokenizer, golden self-test, similarity / classification post-processing, benchmark statistics).
// No UIKit, SwiftUI, Core ML or ExecuTorch here, so `swift test` runs on any macOS (or Linux) host.
import PackageDescription

let package = Package(
    name: "PocketBertKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "PocketBertKit", targets: ["PocketBertKit"]),
        // Answers tests/apps/test_conformance.py with the package's own functions (host only, not for the app).
        .executable(name: "pocketbert-conformance", targets: ["PocketBertConformance"]),
    ],
    targets: [
        .target(name: "PocketBertKit"),
        .executableTarget(name: "PocketBertConformance", dependencies: ["PocketBertKit"]),
        // The tests read the shared golden fixture at ../../tests/fixtures/tiny_bundle through #filePath
        // (see Tests/PocketBertKitTests/Fixture.swift), so no copy of it lives in this package.
        .testTarget(name: "PocketBertKitTests", dependencies: ["PocketBertKit"]),
    ],
    swiftLanguageModes: [.v6]
)
