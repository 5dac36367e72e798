import CoreML
import ExecuTorch
import Foundation
import PocketBertKit

/// The runtimes this app runs: a bundle's `.mlpackage` artifacts through Core ML, its `.pte`
/// artifacts through ExecuTorch (XNNPACK). Which files exist is read from the manifest only.
enum RuntimeChoice: String, CaseIterable, Identifiable {
    case coreml
    case executorch

    var id: String { rawValue }
    /// The manifest's `artifacts[].format`.
    var format: String { rawValue }
    var title: String { self == .coreml ? "Core ML" : "ExecuTorch" }
}

/// Core ML compute units, as the issue asks: CPU only, CPU + GPU, CPU + Neural Engine, all.
enum ComputeUnitsChoice: String, CaseIterable, Identifiable {
    case cpuOnly = "cpu_only"
    case cpuAndGPU = "cpu_and_gpu"
    case cpuAndNeuralEngine = "cpu_and_ne"
    case all

    var id: String { rawValue }
    var title: String {
        switch self {
        case .cpuOnly: return "CPU"
        case .cpuAndGPU: return "CPU+GPU"
        case .cpuAndNeuralEngine: return "CPU+ANE"
        case .all: return "All"
        }
    }

    var mlComputeUnits: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .all: return .all
        }
    }
}

enum RunnerLoader {
    /// Loads one verified artifact in its runtime.
    static func load(url: URL, artifact: Artifact, bundle: ModelBundle, computeUnits: ComputeUnitsChoice) throws -> EncoderRunner {
        let outputName = bundle.manifest.output?.name ?? "embedding"
        switch artifact.format {
        case RuntimeChoice.coreml.format:
            return try CoreMLRunner(url: url, artifact: artifact, outputName: outputName, computeUnits: computeUnits)
        case RuntimeChoice.executorch.format:
            return try ExecuTorchRunner(url: url, seqLen: artifact.seqLen)
        default:
            throw PocketBertError.runtime("this app runs coreml and executorch artifacts, not \(artifact.format) (\(artifact.file))")
        }
    }
}

/// A `.mlpackage` compiled on the device with `MLModel.compileModel(at:)` (once per artifact sha256;
/// the compiled `.mlmodelc` is kept in Application Support) and loaded with the chosen compute units.
final class CoreMLRunner: EncoderRunner {
    let seqLen: Int
    private let model: MLModel
    private let outputName: String
    private let lock = NSLock()

    init(url: URL, artifact: Artifact, outputName: String, computeUnits: ComputeUnitsChoice) throws {
        seqLen = artifact.seqLen
        self.outputName = outputName
        let compiled = try Self.compiledModel(for: url, sha256: artifact.sha256)
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits.mlComputeUnits
        do {
            model = try MLModel(contentsOf: compiled, configuration: configuration)
        } catch {
            throw PocketBertError.runtime("Core ML could not load \(artifact.file): \(error.localizedDescription)")
        }
    }

    /// The compiled model for this artifact, compiling it on first use.
    static func compiledModel(for url: URL, sha256: String) throws -> URL {
        let cache = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                appropriateFor: nil, create: true)
            .appendingPathComponent("CompiledModels", isDirectory: true)
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        let target = cache.appendingPathComponent("\(sha256).mlmodelc", isDirectory: true)
        if FileManager.default.fileExists(atPath: target.path) { return target }
        let compiled: URL
        do {
            compiled = try MLModel.compileModel(at: url)
        } catch {
            throw PocketBertError.runtime("Core ML could not compile \(url.lastPathComponent): \(error.localizedDescription)")
        }
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.moveItem(at: compiled, to: target)
        return target
    }

    func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        let inputs = try MLDictionaryFeatureProvider(dictionary: [
            "input_ids": MLFeatureValue(shapedArray: MLShapedArray<Int32>(scalars: inputIds, shape: [1, seqLen])),
            "attention_mask": MLFeatureValue(shapedArray: MLShapedArray<Int32>(scalars: attentionMask, shape: [1, seqLen])),
        ])
        let result = try model.prediction(from: inputs)
        guard let array = result.featureValue(for: outputName)?.multiArrayValue else {
            throw PocketBertError.runtime("the Core ML model has no multi-array output \(outputName)")
        }
        return Self.floats(array)
    }

    /// The values of an output in logical order (MLShapedArray follows the strides, which the Neural Engine
    /// may pad), whatever its element type: fp32 models return float32, fp16 ones may return float16.
    static func floats(_ array: MLMultiArray) -> [Float] {
        switch array.dataType {
        case .float32:
            return MLShapedArray<Float>(array).scalars
        case .double:
            return MLShapedArray<Double>(array).scalars.map { Float($0) }
        #if arch(arm64)
        case .float16:
            return MLShapedArray<Float16>(array).scalars.map { Float($0) }
        #endif
        default:
            return MLShapedArray<Float>(converting: array).scalars
        }
    }
}

/// A `.pte` run by ExecuTorch (XNNPACK delegate, optimized and quantized kernels linked in).
final class ExecuTorchRunner: EncoderRunner {
    let seqLen: Int
    private let module: Module
    private let lock = NSLock()  // a Module is not thread-safe

    init(url: URL, seqLen: Int) throws {
        self.seqLen = seqLen
        module = Module(filePath: url.path, loadMode: .mmap)
        do {
            try module.load("forward")
        } catch {
            throw PocketBertError.runtime("ExecuTorch could not load \(url.lastPathComponent): \(error.localizedDescription)")
        }
    }

    /// `inputIds` of the bucket's length, or of any length up to it for a dynamic-length program.
    func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        let ids = Tensor<Int32>(inputIds, shape: [1, inputIds.count])
        let mask = Tensor<Int32>(attentionMask, shape: [1, attentionMask.count])
        let output: Tensor<Float> = try module.forward(ids, mask)
        return try output.scalars()  // `try` covers releases where scalars() still throws
    }
}

/// One bundle run by one runtime and quantization: a runner per bucket, loaded (sha256-verified) on
/// first use, so short texts run the small bucket and long ones the large bucket.
final class Engine: @unchecked Sendable {
    let bundle: ModelBundle
    let runtime: RuntimeChoice
    let quant: String
    let computeUnits: ComputeUnitsChoice
    private var runners: [Int: EncoderRunner] = [:]
    private let lock = NSLock()

    init(bundle: ModelBundle, runtime: RuntimeChoice, quant: String, computeUnits: ComputeUnitsChoice) {
        self.bundle = bundle
        self.runtime = runtime
        self.quant = quant
        self.computeUnits = computeUnits
    }

    struct Inference: Identifiable {
        let id = UUID()
        let text: String
        let encoded: EncodedText
        let output: [Float]
        let latencyMs: Double
    }

    func runner(seqLen: Int) throws -> EncoderRunner {
        lock.lock()
        defer { lock.unlock() }
        if let runner = runners[seqLen] { return runner }
        let artifact = try bundle.artifact(format: runtime.format, quant: quant, seqLen: seqLen)
        let url = try bundle.verify(artifact)
        let runner = try RunnerLoader.load(url: url, artifact: artifact, bundle: bundle, computeUnits: computeUnits)
        runners[seqLen] = runner
        return runner
    }

    /// `text` as the bench's real-length rows call it (`ModelBundle.call`): the bucket's artifact, padded to it,
    /// or a dynamic-length artifact at the text's own length.
    func infer(_ text: String) throws -> Inference {
        let (artifact, encoded) = try bundle.call(format: runtime.format, quant: quant, text: text)
        let runner = try runner(seqLen: artifact.seqLen)
        let start = DispatchTime.now().uptimeNanoseconds
        let output = try runner.run(inputIds: encoded.inputIds, attentionMask: encoded.attentionMask)
        let latency = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return Inference(text: text, encoded: encoded, output: output, latencyMs: latency)
    }

    /// The golden self-test of the tokenizer and of every artifact of this runtime and quantization: the
    /// package's `SelfTest.bundle` (tests/apps/test_conformance.py holds the Swift and Kotlin cores to it).
    func selfTest() -> [CheckResult] {
        let artifacts = bundle.manifest.artifacts.filter { $0.format == runtime.format && $0.quant == quant }
        return SelfTest.bundle(bundle, artifacts: artifacts) { artifact in try runner(seqLen: artifact.seqLen) }
    }
}
