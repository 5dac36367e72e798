import PocketBertKit
import SwiftUI

@main
struct PocketBertDemoApp: App {
    @State private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            if HeadlessBenchmark.requested {
                Text("Benchmarking… results go to Documents/\(BenchmarkResults.fileName)")
                    .padding()
                    .task {
                        // After launch and off the main thread: a long benchmark during launch trips the watchdog.
                        let code = await Task.detached(priority: .userInitiated) { HeadlessBenchmark.run() }.value
                        exit(code)
                    }
            } else {
                ContentView()
                    .environment(model)
                    .onAppear { model.refresh() }
            }
        }
    }
}

/// Headless benchmark, for scripts (as ExecuTorch's minibench):
///
///     xcrun devicectl device process launch --device <UDID> --terminate-existing io.pocketbert.demo \
///         --bench [--bundle NAME] [--runtime coreml|executorch] [--quant int8] [--compute-units all] \
///         [--runs 50] [--warmup 5]
///
/// runs the benchmark, writes Documents/benchmark_results.json (runtime_bench schema; a bad bundle gives
/// `complete: false` with the error in `extra.error`) and exits with 0, or 2 on a bad bundle.
enum HeadlessBenchmark {
    static var requested: Bool { CommandLine.arguments.contains("--bench") }

    static func run(arguments: [String] = CommandLine.arguments) -> Int32 {
        func value(_ flag: String) -> String? {
            guard let i = arguments.firstIndex(of: flag), i + 1 < arguments.count else { return nil }
            return arguments[i + 1]
        }
        let out = BundleLocations.documents.appendingPathComponent(BenchmarkResults.fileName)
        do {
            let urls = BundleLocations.all()
            let wanted = value("--bundle")
            let found: URL?
            if let wanted {
                found = urls.first { $0.lastPathComponent == wanted }
            } else {
                found = urls.first
            }
            guard let url = found else {
                throw PocketBertError.missingFile(path: wanted ?? "a bundle folder in Documents")
            }
            let bundle = try ModelBundle.open(url)
            let runtime = value("--runtime").flatMap(RuntimeChoice.init(rawValue:))
                ?? RuntimeChoice.allCases.first { !bundle.artifacts(formats: [$0.format]).isEmpty } ?? .coreml
            let units = value("--compute-units").flatMap(ComputeUnitsChoice.init(rawValue:)) ?? .all
            let output = try BenchmarkDriver.run(bundle: bundle, runtime: runtime, quant: value("--quant"),
                                                 computeUnits: units, runs: value("--runs").flatMap(Int.init) ?? 50,
                                                 warmup: value("--warmup").flatMap(Int.init) ?? 5, to: out)
            print("pocketbert: wrote \(output.file.path): \(output.results.rows.count) rows")
            return 0
        } catch {
            var failed = BenchmarkResults(device: .current(), config: .init(threads: [1], runs: 1, warmup: 0, seqLens: [128]))
            failed.notes = [error.localizedDescription]
            failed.extra = ["status": .string("failed"), "error": .string(error.localizedDescription)]
            try? failed.write(to: out)
            print("pocketbert: error: \(error.localizedDescription)")
            return 2
        }
    }
}
