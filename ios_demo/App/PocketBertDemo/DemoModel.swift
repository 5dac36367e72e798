import Foundation
import Observation
import PocketBertKit

/// Where bundles come from: the app's Documents folder (Files app, Finder, `xcrun devicectl device
/// copy to`) and the `Bundles` folder shipped among the app's resources.
enum BundleLocations {
    static var documents: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }

    static var resources: URL? {
        Bundle.main.resourceURL?.appendingPathComponent("Bundles", isDirectory: true)
    }

    static func all() -> [URL] {
        BundleDiscovery.bundleDirectories(in: [documents] + (resources.map { [$0] } ?? []))
    }
}

/// The app's state: the chosen bundle, runtime, quantization and compute units, and the results of the
/// last run, self-test and benchmark. Model work runs off the main actor.
@MainActor
@Observable
final class DemoModel {
    var bundleURLs: [URL] = []
    var selectedURL: URL? { didSet { openSelected() } }
    private(set) var bundle: ModelBundle?
    var runtime: RuntimeChoice = .coreml { didSet { engine = nil } }
    var quant: String = "fp32" { didSet { engine = nil } }
    var computeUnits: ComputeUnitsChoice = .all { didSet { engine = nil } }
    var error: String?
    var busy = false

    var texts = "A man is playing a guitar.\nA person plays an instrument.\nThe cat sleeps on the sofa.\nStocks fell sharply today."
    var inferences: [Engine.Inference] = []
    var selfTestResults: [CheckResult] = []
    var benchmark: BenchmarkResults?
    var benchmarkFile: URL?
    var runs = 50
    var warmup = 5

    private var engine: Engine?

    func refresh() {
        bundleURLs = BundleLocations.all()
        if selectedURL == nil || !bundleURLs.contains(where: { $0 == selectedURL }) {
            selectedURL = bundleURLs.first
        }
    }

    var availableRuntimes: [RuntimeChoice] {
        guard let bundle else { return [] }
        return RuntimeChoice.allCases.filter { !bundle.artifacts(formats: [$0.format]).isEmpty }
    }

    var availableQuants: [String] {
        bundle?.quants(format: runtime.format) ?? []
    }

    private func openSelected() {
        engine = nil
        inferences = []
        selfTestResults = []
        benchmark = nil
        guard let url = selectedURL else {
            bundle = nil
            return
        }
        do {
            let opened = try ModelBundle.open(url)
            bundle = opened
            error = nil
            if let first = availableRuntimes.first, !availableRuntimes.contains(runtime) { runtime = first }
            if let first = availableQuants.first, !availableQuants.contains(quant) { quant = first }
        } catch {
            bundle = nil
            self.error = error.localizedDescription
        }
    }

    private func currentEngine() throws -> Engine {
        guard let bundle else { throw PocketBertError.invalidBundle("no bundle selected; copy one into the app's Documents folder") }
        if let engine { return engine }
        let made = Engine(bundle: bundle, runtime: runtime, quant: quant, computeUnits: computeUnits)
        engine = made
        return made
    }

    /// Runs every non-empty line of `texts` through the model.
    func runTexts() {
        let lines = texts.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        perform { engine in try lines.map { try engine.infer($0) } } done: { self.inferences = $0 }
    }

    func runSelfTest() {
        perform { engine in engine.selfTest() } done: { self.selfTestResults = $0 }
    }

    /// Benchmarks every artifact of the chosen runtime and quantization and writes
    /// Documents/benchmark_results.json in the runtime_bench schema.
    func runBenchmark() {
        let runs = runs, warmup = warmup, runtime = runtime, quant = quant, units = computeUnits
        perform { engine in
            try BenchmarkDriver.run(bundle: engine.bundle, runtime: runtime, quant: quant, computeUnits: units,
                                    runs: runs, warmup: warmup)
        } done: { result in
            self.benchmark = result.results
            self.benchmarkFile = result.file
        }
    }

    private func perform<T>(_ work: @escaping (Engine) throws -> T, done: @escaping (T) -> Void) {
        let engine: Engine
        do {
            engine = try currentEngine()
        } catch {
            self.error = error.localizedDescription
            return
        }
        busy = true
        error = nil
        Task.detached(priority: .userInitiated) {
            let outcome = Result { try work(engine) }
            await MainActor.run {
                self.busy = false
                switch outcome {
                case let .success(value): done(value)
                case let .failure(error): self.error = error.localizedDescription
                }
            }
        }
    }
}

/// The benchmark behind the Benchmark screen, the headless `--bench` launch and the XCTest target.
enum BenchmarkDriver {
    struct Output {
        let results: BenchmarkResults
        let file: URL
    }

    static func run(bundle: ModelBundle, runtime: RuntimeChoice, quant: String?, computeUnits: ComputeUnitsChoice,
                    runs: Int, warmup: Int, to file: URL? = nil) throws -> Output {
        let artifacts = bundle.artifacts(formats: [runtime.format]).filter { quant == nil || $0.quant == quant }
        guard !artifacts.isEmpty else {
            throw PocketBertError.noArtifact("\(bundle.name) has no \(runtime.format) artifact; export with --formats \(runtime.format)")
        }
        let harness = BenchmarkHarness(runs: runs, warmup: warmup,
                                       computeUnits: runtime == .coreml ? computeUnits.rawValue : nil)
        let results = harness.run(bundle: bundle, artifacts: artifacts, device: .current(), factory: { url, artifact in
            try RunnerLoader.load(url: url, artifact: artifact, bundle: bundle, computeUnits: computeUnits)
        })
        let target = file ?? BundleLocations.documents.appendingPathComponent(BenchmarkResults.fileName)
        try results.write(to: target)
        return Output(results: results, file: target)
    }
}
