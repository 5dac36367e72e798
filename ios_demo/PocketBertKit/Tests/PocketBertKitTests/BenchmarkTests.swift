import XCTest
@testable import PocketBertKit

/// Latency statistics as runtime_bench/stats.py, and benchmark_results.json in the runtime_bench schema
/// (Kotlin: HeadlessBenchmarkTest).
final class BenchmarkTests: XCTestCase {
    /// The numbers `pocketbert.runtime_bench.stats.summarize` gives for the same samples.
    func testLatencyStatisticsMatchRuntimeBench() {
        let s = LatencyStats.summarize([5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 2.5, 3.5, 1.5, 7.0])
        XCTAssertEqual(s.runs, 10)
        XCTAssertEqual(s.p50, 3.25, accuracy: 1e-12)
        XCTAssertEqual(s.p90, 7.3, accuracy: 1e-12)
        XCTAssertEqual(s.p99, 9.73, accuracy: 1e-12)
        XCTAssertEqual(s.trimmedMean, 3.5625, accuracy: 1e-12)
        XCTAssertEqual(s.min, 1.0)
        XCTAssertEqual(s.max, 10.0)
        let one = LatencyStats.summarize([4.2])
        XCTAssertEqual([one.p50, one.p90, one.p99, one.trimmedMean], [4.2, 4.2, 4.2, 4.2])
        // Two samples: the 10-90% band holds neither, so the trimmed mean falls back to the median.
        let two = LatencyStats.summarize([1.0, 2.0])
        XCTAssertEqual(two.p90, 1.9, accuracy: 1e-12)
        XCTAssertEqual(two.p99, 1.99, accuracy: 1e-12)
        XCTAssertEqual(two.trimmedMean, 1.5, accuracy: 1e-12)
    }

    private func object(_ results: BenchmarkResults) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: results.jsonData()) as? [String: Any])
    }

    private func harness() -> BenchmarkHarness {
        var h = BenchmarkHarness(runs: 20, warmup: 2, threads: 1)
        var now: UInt64 = 0
        h.clock = {
            now += 1_500_000  // every clock read advances 1.5 ms: deterministic latencies
            return now
        }
        return h
    }

    private func replayFactory(_ bundle: ModelBundle) -> BenchmarkHarness.RunnerFactory {
        { _, artifact in ReplayRunner(golden: bundle.golden, seqLen: artifact.seqLen) }
    }

    func testGoodBundleWritesCompleteResultsInTheSchema() throws {
        let dir = try Fixture.copy()
        try Fixture.addPlaceholderArtifacts(dir)
        let bundle = try ModelBundle.open(dir)
        let device = BenchmarkResults.DeviceInfo(environment: "host", name: "test", os: "test", arch: "arm64", cores: 1)
        let results = harness().run(bundle: bundle, artifacts: bundle.manifest.artifacts, device: device,
                                    factory: replayFactory(bundle))
        XCTAssertTrue(results.complete)
        XCTAssertEqual(results.rows.count, 2)
        for row in results.rows {
            XCTAssertEqual(row.status, "ok", "\(row.name): \(row.error ?? "")")
            XCTAssertEqual(row.runs, 20)
            XCTAssertEqual(row.latencyMsP50 ?? 0, 1.5, accuracy: 1e-9)
        }
        let url = dir.appendingPathComponent(BenchmarkResults.fileName)
        try results.write(to: url)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        // The schema's required keys, and nothing it does not know.
        XCTAssertEqual(json["schema_version"] as? String, "1.0")
        XCTAssertEqual(json["kind"] as? String, "pocketbert-bench-results")
        let allowedTop: Set<String> = ["schema_version", "kind", "complete", "created_utc", "bundle", "device", "config",
                                       "rows", "peak", "estimates", "provenance", "notes", "extra"]
        XCTAssertTrue(Set(json.keys).isSubset(of: allowedTop), "\(json.keys)")
        let config = try XCTUnwrap(json["config"] as? [String: Any])
        XCTAssertEqual(config["seq_lens"] as? [Int], [16, 32])
        XCTAssertEqual(config["threads"] as? [Int], [1])
        let rows = try XCTUnwrap(json["rows"] as? [[String: Any]])
        let allowedRow: Set<String> = ["name", "file", "format", "backend", "quant", "seq_len", "threads", "role", "status",
                                       "error", "size_bytes", "load_ms", "first_inference_ms", "runs", "latency_ms_p50",
                                       "latency_ms_p90", "latency_ms_p99", "latency_ms_trimmed_mean", "latency_ms_min",
                                       "latency_ms_max", "peak_rss_delta_mb", "gflops_per_inference", "achieved_gflops",
                                       "peak_fraction", "ops_top", "ops_profile_note", "delegated_share", "speedup_vs",
                                       "quality", "samples_ms", "extra"]
        for row in rows {
            XCTAssertTrue(Set(row.keys).isSubset(of: allowedRow), "\(row.keys)")
            for key in ["name", "format", "backend", "quant", "seq_len", "threads", "role", "status",
                        "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_trimmed_mean"] {
                XCTAssertNotNil(row[key], key)
            }
            XCTAssertNil(row["error"], "no null error on an ok row")
            XCTAssertEqual(row["role"] as? String, "artifact")
        }
        let bundleInfo = try XCTUnwrap(json["bundle"] as? [String: Any])
        XCTAssertEqual(bundleInfo["model_name"] as? String, "tiny")
        XCTAssertEqual((bundleInfo["manifest_sha256"] as? String)?.count, 64)
        XCTAssertEqual((json["extra"] as? [String: Any])?["status"] as? String, "passed")
    }

    /// The fixture lists artifacts it does not ship: each row fails with the missing-artifact message.
    func testMissingArtifactFileGivesFailedRows() throws {
        let bundle = try Fixture.bundle()
        let device = BenchmarkResults.DeviceInfo.current()
        let results = harness().run(bundle: bundle, artifacts: bundle.manifest.artifacts, device: device,
                                    factory: replayFactory(bundle))
        XCTAssertEqual(results.rows.map(\.status), ["failed", "failed"])
        for (row, artifact) in zip(results.rows, bundle.manifest.artifacts) {
            XCTAssertTrue(row.error?.contains(artifact.file) == true, row.error ?? "")
        }
        let json = try object(results)
        XCTAssertEqual((json["extra"] as? [String: Any])?["status"] as? String, "failed")
    }

    func testSha256MismatchGivesAFailedRow() throws {
        let dir = try Fixture.copy()
        try Fixture.addPlaceholderArtifacts(dir)
        let bundle = try ModelBundle.open(dir)
        let victim = try XCTUnwrap(bundle.manifest.artifacts.first)
        try Data("changed".utf8).write(to: dir.appendingPathComponent(victim.file))
        let device = BenchmarkResults.DeviceInfo.current()
        let results = harness().run(bundle: bundle, artifacts: bundle.manifest.artifacts, device: device,
                                    factory: replayFactory(bundle))
        let row = try XCTUnwrap(results.rows.first { $0.file == victim.file })
        XCTAssertEqual(row.status, "failed")
        XCTAssertTrue(row.error?.contains("sha256") == true, row.error ?? "")
        XCTAssertEqual(results.rows.filter { $0.status == "ok" }.count, 1, "the other artifact still runs")
    }

    func testSelfTestFailureMarksTheRowFailed() throws {
        let dir = try Fixture.copy()
        try Fixture.addPlaceholderArtifacts(dir)
        let bundle = try ModelBundle.open(dir)
        final class Zeros: EncoderRunner {
            let seqLen: Int
            init(_ n: Int) { seqLen = n }
            func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] { Array(repeating: 0, count: 32) }
        }
        let results = harness().run(bundle: bundle, artifacts: bundle.manifest.artifacts,
                                    device: .current(), factory: { _, a in Zeros(a.seqLen) })
        XCTAssertTrue(results.rows.allSatisfy { $0.status == "failed" && ($0.error ?? "").hasPrefix("self-test failed") })
        XCTAssertNotNil(results.rows.first?.latencyMsP50, "latencies are still recorded")
    }

    func testLoadFailureGivesAFailedRow() throws {
        let dir = try Fixture.copy()
        try Fixture.addPlaceholderArtifacts(dir)
        let bundle = try ModelBundle.open(dir)
        let results = harness().run(bundle: bundle, artifacts: bundle.manifest.artifacts, device: .current(),
                                    factory: { _, _ in throw PocketBertError.runtime("Core ML could not compile the model") })
        XCTAssertTrue(results.rows.allSatisfy { ($0.error ?? "").contains("could not load") })
    }

    func testDeviceInfoOfThisHost() {
        let d = BenchmarkResults.DeviceInfo.current()
        XCTAssertTrue(["host", "emulation", "ios"].contains(d.environment))
        XCTAssertGreaterThanOrEqual(d.cores, 1)
    }
}
