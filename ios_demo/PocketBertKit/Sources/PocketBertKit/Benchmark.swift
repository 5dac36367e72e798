import Foundation
#if canImport(Darwin)
import Darwin
#endif

/// Latency statistics with the definitions of `runtime_bench/stats.py` (and the Kotlin `LatencyStats`).
public enum LatencyStats {
    /// The q-th percentile (0...100), linear interpolation between closest ranks (numpy's default):
    /// rank = q / 100 * (n - 1).
    public static func percentile(_ samples: [Double], _ q: Double) -> Double {
        precondition(!samples.isEmpty, "percentile of no samples")
        precondition((0...100).contains(q), "percentile q must be in [0, 100], got \(q)")
        let xs = samples.sorted()
        let rank = q / 100 * Double(xs.count - 1)
        let lo = Int(rank.rounded(.down))
        let hi = min(lo + 1, xs.count - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (rank - Double(lo))
    }

    /// Mean of the samples between the 10th and 90th percentiles, inclusive (the median when that band is empty).
    public static func trimmedMean(_ samples: [Double], lower: Double = 10, upper: Double = 90) -> Double {
        precondition(!samples.isEmpty, "trimmed mean of no samples")
        let lo = percentile(samples, lower), hi = percentile(samples, upper)
        let kept = samples.filter { $0 >= lo && $0 <= hi }
        return kept.isEmpty ? percentile(samples, 50) : kept.reduce(0, +) / Double(kept.count)
    }

    public struct Summary: Sendable, Equatable {
        public let runs: Int
        public let p50: Double
        public let p90: Double
        public let p99: Double
        public let trimmedMean: Double
        public let min: Double
        public let max: Double
    }

    public static func summarize(_ samplesMs: [Double]) -> Summary {
        Summary(runs: samplesMs.count, p50: percentile(samplesMs, 50), p90: percentile(samplesMs, 90),
                p99: percentile(samplesMs, 99), trimmedMean: trimmedMean(samplesMs),
                min: samplesMs.min()!, max: samplesMs.max()!)
    }
}

/// A JSON value for the free-form `extra` and `provenance` objects of the results file.
public enum JSONValue: Encodable, Sendable, Equatable {
    case string(String), number(Double), int(Int), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .string(v): try c.encode(v)
        case let .number(v): try c.encode(v)
        case let .int(v): try c.encode(v)
        case let .bool(v): try c.encode(v)
        case let .array(v): try c.encode(v)
        case let .object(v): try c.encode(v)
        case .null: try c.encodeNil()
        }
    }
}

/// `benchmark_results.json` in the schema of `runtime_bench/results.schema.json` (version 1.x), the
/// file `pocketbert bench` writes on the host and `pocketbert report` reads. Optional fields that are
/// nil are left out, as the schema refuses unknown or null-typed row keys.
public struct BenchmarkResults: Encodable, Sendable {
    public static let schemaVersion = "1.0"
    public static let kind = "pocketbert-bench-results"
    public static let fileName = "benchmark_results.json"

    public var schemaVersion = BenchmarkResults.schemaVersion
    public var kind = BenchmarkResults.kind
    public var complete = false
    public var createdUTC: String
    public var bundle: BundleInfo?
    public var device: DeviceInfo
    public var config: Config
    public var rows: [Row] = []
    public var notes: [String]?
    public var provenance: [String: JSONValue]?
    public var extra: [String: JSONValue]?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case kind, complete
        case createdUTC = "created_utc"
        case bundle, device, config, rows, notes, provenance, extra
    }

    public init(device: DeviceInfo, config: Config, created: Date = Date()) {
        self.device = device
        self.config = config
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        createdUTC = formatter.string(from: created)
    }

    public struct BundleInfo: Encodable, Sendable {
        public var path: String
        public var modelName: String
        public var task: String
        public var manifestSha256: String
        public var numParameters: Int?

        enum CodingKeys: String, CodingKey {
            case path
            case modelName = "model_name"
            case task
            case manifestSha256 = "manifest_sha256"
            case numParameters = "num_parameters"
        }

        public init(bundle: ModelBundle) throws {
            path = bundle.directory.lastPathComponent
            modelName = bundle.manifest.model.name
            task = bundle.manifest.model.task.rawValue
            manifestSha256 = try FileHash.sha256(file: bundle.directory.appendingPathComponent(ModelBundle.manifestFile))
            numParameters = bundle.manifest.model.numParameters
        }
    }

    public struct DeviceInfo: Encodable, Sendable {
        /// The schema's `host` / `adb` / `emulation`, or `ios` for a physical iPhone or iPad (see README).
        public var environment: String
        public var name: String
        public var os: String
        public var arch: String
        public var cores: Int
        public var memoryMB: Double?

        enum CodingKeys: String, CodingKey {
            case environment, name, os, arch, cores
            case memoryMB = "memory_mb"
        }

        public init(environment: String, name: String, os: String, arch: String, cores: Int, memoryMB: Double? = nil) {
            self.environment = environment
            self.name = name
            self.os = os
            self.arch = arch
            self.cores = cores
            self.memoryMB = memoryMB
        }

        /// This process's machine: `emulation` in the iOS Simulator, `host` on a Mac, `ios` on a device.
        public static func current(modelName: String? = nil) -> DeviceInfo {
            let info = ProcessInfo.processInfo
            #if targetEnvironment(simulator)
            let environment = "emulation"
            #elseif os(iOS)
            let environment = "ios"
            #else
            let environment = "host"
            #endif
            #if arch(arm64)
            let arch = "arm64"
            #elseif arch(x86_64)
            let arch = "x86_64"
            #else
            let arch = "unknown"
            #endif
            return DeviceInfo(environment: environment, name: modelName ?? machineIdentifier() ?? info.hostName,
                              os: info.operatingSystemVersionString, arch: arch, cores: info.activeProcessorCount,
                              memoryMB: Double(info.physicalMemory) / 1e6)
        }
    }

    public struct Config: Encodable, Sendable {
        public var threads: [Int]
        public var runs: Int
        public var warmup: Int
        public var seqLens: [Int]
        public var batchSize = 1
        public var computeUnits: String?

        enum CodingKeys: String, CodingKey {
            case threads, runs, warmup
            case seqLens = "seq_lens"
            case batchSize = "batch_size"
            case computeUnits = "compute_units"
        }

        public init(threads: [Int], runs: Int, warmup: Int, seqLens: [Int], computeUnits: String? = nil) {
            self.threads = threads
            self.runs = runs
            self.warmup = warmup
            self.seqLens = seqLens
            self.computeUnits = computeUnits
        }
    }

    public struct Row: Encodable, Sendable {
        public var name: String
        public var file: String?
        public var format: String
        public var backend: String
        public var quant: String
        public var seqLen: Int
        public var threads: Int
        public var role = "artifact"
        /// `ok`, `failed` or `skipped`; `error` is required unless `ok`.
        public var status: String
        public var error: String?
        public var sizeBytes: Int?
        public var loadMs: Double?
        public var firstInferenceMs: Double?
        public var runs: Int?
        public var latencyMsP50: Double?
        public var latencyMsP90: Double?
        public var latencyMsP99: Double?
        public var latencyMsTrimmedMean: Double?
        public var latencyMsMin: Double?
        public var latencyMsMax: Double?
        public var peakRssDeltaMB: Double?
        public var samplesMs: [Double]?
        public var extra: [String: JSONValue]?

        enum CodingKeys: String, CodingKey {
            case name, file, format, backend, quant
            case seqLen = "seq_len"
            case threads, role, status, error
            case sizeBytes = "size_bytes"
            case loadMs = "load_ms"
            case firstInferenceMs = "first_inference_ms"
            case runs
            case latencyMsP50 = "latency_ms_p50"
            case latencyMsP90 = "latency_ms_p90"
            case latencyMsP99 = "latency_ms_p99"
            case latencyMsTrimmedMean = "latency_ms_trimmed_mean"
            case latencyMsMin = "latency_ms_min"
            case latencyMsMax = "latency_ms_max"
            case peakRssDeltaMB = "peak_rss_delta_mb"
            case samplesMs = "samples_ms"
            case extra
        }

        public init(artifact: Artifact, threads: Int, status: String = "failed", error: String? = nil) {
            name = (artifact.file as NSString).lastPathComponent
            file = artifact.file
            format = artifact.format
            backend = artifact.backend
            quant = artifact.quant
            seqLen = artifact.seqLen
            self.threads = threads
            self.status = status
            self.error = error
            sizeBytes = artifact.sizeBytes
        }

        /// Fills the latency fields from timed samples.
        public mutating func record(samplesMs: [Double]) {
            let s = LatencyStats.summarize(samplesMs)
            runs = s.runs
            latencyMsP50 = s.p50
            latencyMsP90 = s.p90
            latencyMsP99 = s.p99
            latencyMsTrimmedMean = s.trimmedMean
            latencyMsMin = s.min
            latencyMsMax = s.max
            self.samplesMs = samplesMs
        }
    }

    /// Pretty, key-sorted JSON.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Writes atomically (a temporary file, then a rename): readers never see half a file.
    public func write(to url: URL) throws {
        try jsonData().write(to: url, options: .atomic)
    }
}

/// The measuring loop behind the app's benchmark screen and headless mode: for each artifact, verify
/// its sha256, load it, run the golden self-test on it, then time `warmup + runs` inferences.
public struct BenchmarkHarness {
    /// Loads one artifact in its runtime; throws to report a load failure.
    public typealias RunnerFactory = (_ url: URL, _ artifact: Artifact) throws -> EncoderRunner

    public var runs: Int
    public var warmup: Int
    public var threads: Int
    public var computeUnits: String?
    /// Monotonic time in nanoseconds (injectable for tests).
    public var clock: () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }

    public init(runs: Int = 50, warmup: Int = 5, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                computeUnits: String? = nil) {
        self.runs = runs
        self.warmup = warmup
        self.threads = threads
        self.computeUnits = computeUnits
    }

    public func run(bundle: ModelBundle, artifacts: [Artifact], device: BenchmarkResults.DeviceInfo,
                    factory: RunnerFactory) -> BenchmarkResults {
        var results = BenchmarkResults(
            device: device,
            config: .init(threads: [max(1, threads)], runs: max(1, runs), warmup: max(0, warmup),
                          seqLens: bundle.seqLens, computeUnits: computeUnits))
        results.bundle = try? BenchmarkResults.BundleInfo(bundle: bundle)
        results.provenance = ["writer": .string("ios_demo PocketBertKit BenchmarkHarness")]
        let tokenizerChecks = bundle.tokenizerSelfTest()
        let tokenizerFailed = tokenizerChecks.filter { !$0.passed }
        for artifact in artifacts {
            results.rows.append(row(bundle: bundle, artifact: artifact, factory: factory))
        }
        let rowsFailed = results.rows.filter { $0.status != "ok" }.count
        results.notes = ["tokenizer self-test: \(tokenizerChecks.count - tokenizerFailed.count)/\(tokenizerChecks.count) golden cases passed"
            + (tokenizerFailed.first.map { "; first failure \($0.caseName): \($0.detail)" } ?? "")]
        results.extra = [
            "status": .string(tokenizerFailed.isEmpty && rowsFailed == 0 ? "passed" : "failed"),
            "tokenizer_cases": .int(tokenizerChecks.count),
            "tokenizer_failed": .array(tokenizerFailed.map { .string($0.caseName) }),
        ]
        results.complete = true
        return results
    }

    func row(bundle: ModelBundle, artifact: Artifact, factory: RunnerFactory) -> BenchmarkResults.Row {
        var row = BenchmarkResults.Row(artifact: artifact, threads: max(1, threads))
        let url: URL
        do {
            url = try bundle.verify(artifact)
        } catch {
            row.error = error.localizedDescription
            return row
        }
        let memoryBefore = MemoryProbe.peakResidentMB()
        let t0 = clock()
        let runner: EncoderRunner
        do {
            runner = try factory(url, artifact)
        } catch {
            row.error = "could not load \(artifact.file): \(error.localizedDescription)"
            return row
        }
        row.loadMs = Double(clock() - t0) / 1e6
        let tolerance: Tolerance
        do {
            tolerance = try bundle.tolerance(for: artifact)
        } catch {
            row.error = error.localizedDescription
            return row
        }
        let checks = SelfTest.artifact(name: artifact.file, runner: runner, golden: bundle.golden,
                                       tolerance: tolerance, padId: bundle.tokenizer.padId)
        let failed = checks.filter { !$0.passed }
        // Time the golden case of this bucket (a real sentence), or an all-ones mask of the bucket's length.
        var inputIds: [Int32]
        let mask: [Int32]
        if let sample = bundle.golden.cases.first(where: { $0.seqLen == artifact.seqLen }) {
            inputIds = sample.inputIds.map { Int32($0) }
            mask = sample.attentionMask.map { Int32($0) }
        } else {
            inputIds = Array(repeating: Int32(bundle.tokenizer.unkId), count: artifact.seqLen)
            inputIds[0] = Int32(bundle.tokenizer.clsId)
            inputIds[artifact.seqLen - 1] = Int32(bundle.tokenizer.sepId)
            mask = Array(repeating: 1, count: artifact.seqLen)
        }
        do {
            let t1 = clock()
            _ = try runner.run(inputIds: inputIds, attentionMask: mask)
            row.firstInferenceMs = Double(clock() - t1) / 1e6
            for _ in 0..<max(0, warmup) { _ = try runner.run(inputIds: inputIds, attentionMask: mask) }
            var samples: [Double] = []
            samples.reserveCapacity(runs)
            for _ in 0..<max(1, runs) {
                let s = clock()
                _ = try runner.run(inputIds: inputIds, attentionMask: mask)
                samples.append(Double(clock() - s) / 1e6)
            }
            row.record(samplesMs: samples)
        } catch {
            row.error = "inference failed: \(error.localizedDescription)"
            return row
        }
        if let before = memoryBefore, let after = MemoryProbe.peakResidentMB() {
            row.peakRssDeltaMB = after - before
        }
        var extra: [String: JSONValue] = [
            "golden_cases": .int(checks.count),
            "golden_passed": .int(checks.count - failed.count),
            "golden_failed": .array(failed.map { .string("\($0.caseName): \($0.detail)") }),
        ]
        if let computeUnits { extra["compute_units"] = .string(computeUnits) }
        row.extra = extra
        if failed.isEmpty {
            row.status = "ok"
        } else {
            row.error = "self-test failed on \(failed.count)/\(checks.count) golden cases (first: \(failed[0].caseName): \(failed[0].detail))"
        }
        return row
    }
}

/// Peak resident memory of this process (getrusage `ru_maxrss`), in MB.
public enum MemoryProbe {
    public static func peakResidentMB() -> Double? {
        #if canImport(Darwin)
        var usage = rusage()
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        return Double(usage.ru_maxrss) / 1e6  // bytes on Apple platforms (kilobytes on Linux)
        #else
        return nil
        #endif
    }
}

/// `hw.machine` (e.g. "iPhone15,2"), the phone model behind the marketing name.
func machineIdentifier() -> String? {
    #if canImport(Darwin)
    var size = 0
    guard sysctlbyname("hw.machine", nil, &size, nil, 0) == 0, size > 0 else { return nil }
    var buffer = [CChar](repeating: 0, count: size)
    guard sysctlbyname("hw.machine", &buffer, &size, nil, 0) == 0 else { return nil }
    return String(cString: buffer)
    #else
    return nil
    #endif
}
