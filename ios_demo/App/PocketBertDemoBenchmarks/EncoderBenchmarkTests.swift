import PocketBertKit
import XCTest
@testable import PocketBertDemo

/// On-device benchmarks with XCTest's clock and memory metrics. Hosted in the app, so they see the
/// bundles the app sees (Documents, or Resources/Bundles in the app); each test is skipped when no
/// bundle holds an artifact for its runtime. Environment (scheme or `xcodebuild test ... VAR=value`):
/// POCKETBERT_BUNDLE (a bundle folder name), POCKETBERT_QUANT (fp32 / fp16 / int8).
///
///     xcodebuild test -project PocketBertDemo.xcodeproj -scheme PocketBertDemo \
///         -destination 'platform=iOS,name=My iPhone' -only-testing:PocketBertDemoBenchmarks
final class EncoderBenchmarkTests: XCTestCase {
    private let sentence = "A man is playing a guitar."

    private func openBundle() throws -> ModelBundle {
        let urls = BundleLocations.all()
        let wanted = ProcessInfo.processInfo.environment["POCKETBERT_BUNDLE"]
        let found = wanted == nil ? urls.first : urls.first(where: { $0.lastPathComponent == wanted })
        guard let url = found else {
            throw XCTSkip("no bundle \(wanted ?? "") in the app's Documents or Resources/Bundles; see ios_demo/README.md")
        }
        return try ModelBundle.open(url)
    }

    private func engine(_ runtime: RuntimeChoice, _ units: ComputeUnitsChoice = .all) throws -> Engine {
        let bundle = try openBundle()
        let quants = bundle.quants(format: runtime.format)
        let quant = ProcessInfo.processInfo.environment["POCKETBERT_QUANT"] ?? quants.first
        guard let quant, quants.contains(quant) else {
            throw XCTSkip("\(bundle.name) has no \(runtime.format) artifact\(quants.isEmpty ? "" : " of that quantization")")
        }
        return Engine(bundle: bundle, runtime: runtime, quant: quant, computeUnits: units)
    }

    /// Loads (and for Core ML compiles) outside the measurement, checks the golden cases, then measures
    /// 20 inferences per iteration.
    private func measureInference(_ runtime: RuntimeChoice, _ units: ComputeUnitsChoice = .all) throws {
        let engine = try engine(runtime, units)
        let failed = engine.selfTest().filter { !$0.passed }
        XCTAssertEqual(failed.map(\.id), [], "golden self-test failures: \(failed.prefix(3).map(\.detail))")
        _ = try engine.infer(sentence)
        let options = XCTMeasureOptions()
        options.iterationCount = 10
        measure(metrics: [XCTClockMetric(), XCTMemoryMetric()], options: options) {
            for _ in 0..<20 {
                _ = try? engine.infer(sentence)
            }
        }
    }

    func testCoreMLAllComputeUnits() throws { try measureInference(.coreml, .all) }
    func testCoreMLCPUAndNeuralEngine() throws { try measureInference(.coreml, .cpuAndNeuralEngine) }
    func testCoreMLCPUAndGPU() throws { try measureInference(.coreml, .cpuAndGPU) }
    func testCoreMLCPUOnly() throws { try measureInference(.coreml, .cpuOnly) }
    func testExecuTorchXNNPACK() throws { try measureInference(.executorch) }

    /// Tokenization alone: what the app adds in front of the model.
    func testTokenizer() throws {
        let bundle = try openBundle()
        let texts = bundle.golden.cases.map(\.text)
        measure(metrics: [XCTClockMetric(), XCTMemoryMetric()]) {
            for text in texts { _ = bundle.encode(text) }
        }
    }

    /// The headless benchmark's JSON (runtime_bench schema), attached to the test result.
    func testBenchmarkResultsFile() throws {
        let bundle = try openBundle()
        guard let runtime = RuntimeChoice.allCases.first(where: { !bundle.artifacts(formats: [$0.format]).isEmpty }) else {
            throw XCTSkip("\(bundle.name) has no coreml or executorch artifact")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(BenchmarkResults.fileName)
        let output = try BenchmarkDriver.run(bundle: bundle, runtime: runtime, quant: nil, computeUnits: .all,
                                             runs: 20, warmup: 3, to: file)
        XCTAssertTrue(output.results.complete)
        for row in output.results.rows {
            XCTAssertEqual(row.status, "ok", "\(row.name): \(row.error ?? "")")
        }
        let attachment = XCTAttachment(contentsOfFile: file)
        attachment.lifetime = .keepAlways
        add(attachment)
    }
}
