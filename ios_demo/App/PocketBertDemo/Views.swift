import PocketBertKit
import SwiftUI

/// The same screens as the Android app: texts in, similarities or probabilities out with latency; the
/// golden self-test; the benchmark; and where bundles come from.
struct ContentView: View {
    var body: some View {
        TabView {
            RunView().tabItem { Label("Run", systemImage: "text.magnifyingglass") }
            SelfTestView().tabItem { Label("Self-test", systemImage: "checkmark.seal") }
            BenchmarkView().tabItem { Label("Benchmark", systemImage: "speedometer") }
            BundlesView().tabItem { Label("Bundles", systemImage: "folder") }
        }
    }
}

/// Bundle, runtime, quantization and compute units: the top of every screen.
struct SettingsSection: View {
    @Environment(DemoModel.self) private var model

    var body: some View {
        @Bindable var model = model
        Section {
            if model.bundleURLs.isEmpty {
                Text("No bundle found. See the Bundles tab.").foregroundStyle(.secondary)
            } else {
                Picker("Bundle", selection: $model.selectedURL) {
                    ForEach(model.bundleURLs, id: \.self) { url in
                        Text(url.lastPathComponent).tag(Optional(url))
                    }
                }
                if let bundle = model.bundle {
                    LabeledContent("Model", value: "\(bundle.name) · \(bundle.task.rawValue) · seq \(bundle.seqLens.map(String.init).joined(separator: "/"))")
                }
                Picker("Runtime", selection: $model.runtime) {
                    ForEach(model.availableRuntimes) { Text($0.title).tag($0) }
                }
                Picker("Quantization", selection: $model.quant) {
                    ForEach(model.availableQuants, id: \.self) { Text($0).tag($0) }
                }
                if model.runtime == .coreml {
                    Picker("Compute units", selection: $model.computeUnits) {
                        ForEach(ComputeUnitsChoice.allCases) { Text($0.title).tag($0) }
                    }
                    .pickerStyle(.segmented)
                }
            }
            if let error = model.error {
                Text(error).foregroundStyle(.red).font(.footnote)
            }
        }
    }
}

struct RunView: View {
    @Environment(DemoModel.self) private var model

    var body: some View {
        @Bindable var model = model
        NavigationStack {
            Form {
                SettingsSection()
                Section("Texts, one per line") {
                    TextEditor(text: $model.texts).frame(minHeight: 120).font(.body)
                    Button(model.busy ? "Running…" : "Run") { model.runTexts() }
                        .disabled(model.busy || model.bundle == nil)
                }
                if let bundle = model.bundle, !model.inferences.isEmpty {
                    ResultsSection(bundle: bundle, inferences: model.inferences)
                }
            }
            .navigationTitle("PocketBert")
        }
    }
}

/// Similarities (embedding), label probabilities (classification) or masked-token guesses (mlm).
struct ResultsSection: View {
    let bundle: ModelBundle
    let inferences: [Engine.Inference]

    var body: some View {
        switch bundle.task {
        case .embedding:
            Section("Similarity to the first text") {
                let query = inferences[0].output
                let ranked = Similarity.topK(query: query, candidates: inferences.map(\.output), k: inferences.count)
                ForEach(ranked, id: \.index) { match in
                    HStack {
                        Text(inferences[match.index].text).lineLimit(2)
                        Spacer()
                        Text(String(format: "%.3f", match.score)).monospacedDigit()
                    }
                }
            }
        case .classification:
            Section("Probabilities") {
                ForEach(inferences) { inference in
                    VStack(alignment: .leading) {
                        Text(inference.text).lineLimit(2)
                        ForEach(Classifier.predictions(logits: inference.output, labels: bundle.manifest.labels ?? []), id: \.label) { p in
                            HStack {
                                Text(p.label)
                                ProgressView(value: Double(p.probability))
                                Text(String(format: "%.1f%%", p.probability * 100)).monospacedDigit()
                            }
                            .font(.footnote)
                        }
                    }
                }
            }
        case .mlm:
            Section("Top tokens at [MASK]") {
                ForEach(inferences) { inference in
                    Text("\(inference.text): \(maskGuesses(inference))").font(.footnote)
                }
            }
        }
        Section("Latency") {
            ForEach(inferences) { inference in
                HStack {
                    Text(inference.text).lineLimit(1)
                    Spacer()
                    Text("\(inference.encoded.ids.count) tok · seq\(inference.encoded.seqLen)\(inference.encoded.truncated ? " (truncated)" : "")")
                        .foregroundStyle(.secondary)
                    Text(String(format: "%.1f ms", inference.latencyMs)).monospacedDigit()
                }
                .font(.footnote)
            }
        }
    }

    private func maskGuesses(_ inference: Engine.Inference) -> String {
        let guesses = MaskedLM.maskPredictions(ids: inference.encoded.ids, logits: inference.output,
                                               tokenizer: bundle.tokenizer, k: 3)
        guard !guesses.isEmpty else { return "no [MASK] in the text" }
        return guesses.map { top in
            top.map { "\($0.token) \(String(format: "%.2f", $0.probability))" }.joined(separator: ", ")
        }.joined(separator: " | ")
    }
}

struct SelfTestView: View {
    @Environment(DemoModel.self) private var model

    var body: some View {
        NavigationStack {
            Form {
                SettingsSection()
                Section {
                    Button(model.busy ? "Running…" : "Run self-test") { model.runSelfTest() }
                        .disabled(model.busy || model.bundle == nil)
                    if !model.selfTestResults.isEmpty {
                        let failed = model.selfTestResults.filter { !$0.passed }
                        Label(failed.isEmpty ? "All \(model.selfTestResults.count) checks passed"
                                : "\(failed.count) of \(model.selfTestResults.count) checks failed",
                              systemImage: failed.isEmpty ? "checkmark.circle.fill" : "xmark.octagon.fill")
                            .foregroundStyle(failed.isEmpty ? Color.green : Color.red)
                    }
                }
                if !model.selfTestResults.isEmpty {
                    Section("Golden cases") {
                        ForEach(model.selfTestResults) { r in
                            VStack(alignment: .leading) {
                                HStack {
                                    Image(systemName: r.passed ? "checkmark" : "xmark").foregroundStyle(r.passed ? Color.green : Color.red)
                                    Text("\(r.target) · \(r.caseName)")
                                }
                                Text(r.detail).font(.caption).foregroundStyle(.secondary)
                            }
                        }
                    }
                }
            }
            .navigationTitle("Self-test")
        }
    }
}

struct BenchmarkView: View {
    @Environment(DemoModel.self) private var model

    var body: some View {
        @Bindable var model = model
        NavigationStack {
            Form {
                SettingsSection()
                Section {
                    Stepper("Runs: \(model.runs)", value: $model.runs, in: 5...1000, step: 5)
                    Stepper("Warm-up: \(model.warmup)", value: $model.warmup, in: 0...50)
                    Button(model.busy ? "Running…" : "Run benchmark") { model.runBenchmark() }
                        .disabled(model.busy || model.bundle == nil)
                }
                if let results = model.benchmark {
                    Section("Results (\(results.device.name))") {
                        ForEach(results.rows, id: \.name) { row in
                            VStack(alignment: .leading) {
                                Text(row.name).font(.footnote.bold())
                                if row.status == "ok" {
                                    Text(String(format: "p50 %.2f ms · p90 %.2f ms · load %.0f ms", row.latencyMsP50 ?? 0,
                                                row.latencyMsP90 ?? 0, row.loadMs ?? 0)).monospacedDigit()
                                } else {
                                    Text(row.error ?? row.status).foregroundStyle(.red)
                                }
                            }
                            .font(.footnote)
                        }
                    }
                    if let file = model.benchmarkFile {
                        Section {
                            ShareLink(item: file) { Label("Share \(file.lastPathComponent)", systemImage: "square.and.arrow.up") }
                        }
                    }
                }
            }
            .navigationTitle("Benchmark")
        }
    }
}

struct BundlesView: View {
    @Environment(DemoModel.self) private var model

    var body: some View {
        NavigationStack {
            List {
                Section("Found") {
                    ForEach(model.bundleURLs, id: \.self) { url in
                        VStack(alignment: .leading) {
                            Text(url.lastPathComponent)
                            Text(url.deletingLastPathComponent().lastPathComponent).font(.caption).foregroundStyle(.secondary)
                        }
                    }
                    Button("Look again") { model.refresh() }
                }
                Section("Adding a bundle") {
                    Text("Copy the whole folder that `pocketbert export` wrote (manifest.json, vocab.txt, golden.json and the .mlpackage / .pte files) into this app's Documents: with the Files app (On My iPhone › PocketBert), Finder's file sharing, or `xcrun devicectl device copy to`. Bundles can also ship in the app under Resources/Bundles.")
                        .font(.footnote)
                }
            }
            .navigationTitle("Bundles")
        }
    }
}
