import XCTest
@testable import PocketBertKit

/// The golden self-test passes on the fixture and fails when an id or an output is altered
/// (Kotlin: GoldenSelfTestTest).
final class GoldenSelfTestTests: XCTestCase {
    /// fp32's thresholds as export writes them (pocketbert/bundle/parity.py), for checks run without a bundle.
    private let fp32 = Tolerance(maxAbsDiff: 1e-3, minCosine: 0.9999, minArgmaxAgreement: 0.99, minInvarianceCosine: 0.9999)

    private func artifactChecks(_ bundle: ModelBundle, golden: GoldenFile) throws -> [CheckResult] {
        try bundle.manifest.artifacts.flatMap { a in
            SelfTest.artifact(name: a.file, runner: ReplayRunner(golden: bundle.golden, seqLen: a.seqLen),
                              golden: golden, tolerance: try bundle.tolerance(for: a), padId: bundle.tokenizer.padId)
        }
    }

    func testPassesOnTheFixture() throws {
        let bundle = try Fixture.bundle()
        let tok = bundle.tokenizerSelfTest()
        XCTAssertGreaterThanOrEqual(tok.count, 20, "golden file has 20+ cases")
        XCTAssertEqual(tok.filter { !$0.passed }.map(\.id), [])
        let outs = try artifactChecks(bundle, golden: bundle.golden)
        // Every case that fits a bucket runs on it, padded (as `pocketbert verify`): 9 on seq16, all 22 on seq32.
        let fitting = bundle.manifest.artifacts.map { a in bundle.golden.cases.filter { $0.ids.count <= a.seqLen }.count }
        XCTAssertEqual(outs.count, fitting.reduce(0, +))
        XCTAssertGreaterThan(outs.count, bundle.golden.cases.count, "short cases also run padded on the larger bucket")
        XCTAssertEqual(outs.filter { !$0.passed }.map(\.id), [])
    }

    func testFailsWhenAGoldenIdIsAltered() throws {
        let bundle = try Fixture.bundle()
        var golden = bundle.golden
        let i = try XCTUnwrap(golden.cases.firstIndex { $0.name == "plain" })
        golden.cases[i].ids[1] += 1
        let failed = SelfTest.tokenizer(bundle.tokenizer, golden: golden, seqLens: bundle.seqLens).filter { !$0.passed }
        XCTAssertEqual(failed.map(\.caseName), ["plain"])
        XCTAssertTrue(failed[0].detail.hasPrefix("ids differ at position 1"), failed[0].detail)
    }

    func testFailsWhenAGoldenBucketOrMaskIsAltered() throws {
        let bundle = try Fixture.bundle()
        var golden = bundle.golden
        golden.cases[0].seqLen = golden.cases[0].seqLen == 16 ? 32 : 16
        let last = golden.cases[1].attentionMask.count - 1
        golden.cases[1].attentionMask[last] = 1 - golden.cases[1].attentionMask[last]
        let failed = SelfTest.tokenizer(bundle.tokenizer, golden: golden, seqLens: bundle.seqLens).filter { !$0.passed }
        XCTAssertEqual(failed.map(\.caseName), [golden.cases[0].name, golden.cases[1].name])
        XCTAssertTrue(failed[0].detail.hasPrefix("bucket"), failed[0].detail)
        XCTAssertTrue(failed[1].detail.hasPrefix("attention_mask"), failed[1].detail)
    }

    func testFailsWhenAGoldenOutputIsAltered() throws {
        let bundle = try Fixture.bundle()
        var golden = bundle.golden
        let i = try XCTUnwrap(golden.cases.firstIndex { $0.name == "plain" })
        golden.cases[i].expected![0] += 0.01  // 10x the onnx/fp32 max_abs_diff
        for b in golden.cases[i].buckets!.indices {  // the case at every bucket (golden.json 1.1)
            golden.cases[i].buckets![b] = GoldenBucket(seqLen: golden.cases[i].buckets![b].seqLen,
                                                       expected: golden.cases[i].buckets![b].expected!.enumerated().map {
                                                           $0.offset == 0 ? $0.element + 0.01 : $0.element
                                                       }, expectedArgmax: nil)
        }
        XCTAssertTrue(SelfTest.tokenizer(bundle.tokenizer, golden: golden, seqLens: bundle.seqLens).allSatisfy(\.passed))
        let failed = try artifactChecks(bundle, golden: golden).filter { !$0.passed }
        // "plain" fits both buckets: it fails on each artifact, and nothing else does.
        XCTAssertEqual(failed.map(\.caseName), ["plain", "plain"])
        XCTAssertEqual(Set(failed.map(\.target)).count, 2)
        XCTAssertTrue(failed[0].detail.hasPrefix("max|d|"), failed[0].detail)
    }

    func testEveryCaseIsStoredAtEveryBucketItFits() throws {
        let bundle = try Fixture.bundle()
        for c in bundle.golden.cases {
            XCTAssertEqual(c.buckets?.map(\.seqLen), bundle.seqLens.filter { $0 >= c.ids.count }, c.name)
            XCTAssertEqual(c.expected(at: c.seqLen), c.expected, c.name)
        }
    }

    func testBucketInvarianceFailsWhenOneBucketsOutputIsAltered() throws {
        let bundle = try Fixture.bundle()
        let small = try XCTUnwrap(bundle.manifest.artifacts.first { $0.seqLen == 16 })
        let large = try XCTUnwrap(bundle.manifest.artifacts.first { $0.seqLen == 32 })
        func outputs(_ a: Artifact) throws -> [String: [Float]] {
            var out: [String: [Float]] = [:]
            _ = SelfTest.artifact(name: a.file, runner: ReplayRunner(golden: bundle.golden, seqLen: a.seqLen),
                                  golden: bundle.golden, tolerance: try bundle.tolerance(for: a)) { out[$0] = $1 }
            return out
        }
        let tolerances = bundle.manifest.tolerances
        let good = SelfTest.invariance(golden: bundle.golden, runs: [(small, try outputs(small)), (large, try outputs(large))],
                                       tolerances: tolerances)
        XCTAssertEqual(good.count, 2)
        XCTAssertTrue(good.allSatisfy(\.passed), good.map(\.detail).joined(separator: "; "))
        var altered = try outputs(large)
        altered["plain"] = altered["plain"]!.enumerated().map { $0.offset % 2 == 0 ? $0.element * 1.1 : $0.element }
        let bad = SelfTest.invariance(golden: bundle.golden, runs: [(small, try outputs(small)), (large, altered)],
                                      tolerances: tolerances)
        XCTAssertEqual(bad.filter { !$0.passed }.map(\.caseName), ["plain vs seq32", "plain vs seq16"])
    }

    func testToleranceBoundaries() {
        let tol = Tolerance(maxAbsDiff: 1e-3, minCosine: 0.999)
        let want: [Float] = [1, 2, 3, 4]
        XCTAssertTrue(SelfTest.compare(output: [1.0005, 2, 3, 4], expected: want, tolerance: tol).passed)
        XCTAssertFalse(SelfTest.compare(output: [1.002, 2, 3, 4], expected: want, tolerance: tol).passed)
        XCTAssertFalse(SelfTest.compare(output: [1, 2, 3], expected: want, tolerance: tol).passed, "length differs")
        XCTAssertFalse(SelfTest.compare(output: [.nan, 2, 3, 4], expected: want, tolerance: tol).passed)
        // A scaled output keeps the cosine but not the absolute difference.
        XCTAssertFalse(SelfTest.compare(output: want.map { $0 * 2 }, expected: want, tolerance: tol).passed)
    }

    func testRunnerFailureIsAFailedCheckNotACrash() throws {
        let bundle = try Fixture.bundle()
        final class Broken: EncoderRunner {
            let seqLen = 16
            func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] { throw PocketBertError.runtime("boom") }
        }
        let checks = SelfTest.artifact(name: "broken", runner: Broken(), golden: bundle.golden, tolerance: fp32)
        XCTAssertFalse(checks.isEmpty)
        XCTAssertTrue(checks.allSatisfy { !$0.passed && $0.detail.contains("boom") })
    }

    func testMaskedLMArgmaxCheck() {
        // Two real tokens and one pad over a vocabulary of 3: argmax 2, 0 (the pad position is ignored).
        let golden = GoldenFile(schemaVersion: "1.0", outputName: "logits", seqLens: [3], cases: [
            GoldenCase(name: "mlm", text: "x", ids: [2, 3], seqLen: 3, inputIds: [2, 3, 0], attentionMask: [1, 1, 0],
                       expectedArgmax: [2, 0, 1]),
        ])
        final class Fixed: EncoderRunner {
            let seqLen = 3
            let out: [Float]
            init(_ out: [Float]) { self.out = out }
            func run(inputIds: [Int32], attentionMask: [Int32]) throws -> [Float] { out }
        }
        let good = SelfTest.artifact(name: "m", runner: Fixed([0, 1, 5, 9, 1, 0, 7, 7, 0]), golden: golden, tolerance: fp32)
        XCTAssertTrue(good[0].passed, good[0].detail)
        let bad = SelfTest.artifact(name: "m", runner: Fixed([0, 1, 5, 0, 9, 0, 0, 0, 0]), golden: golden, tolerance: fp32)
        XCTAssertFalse(bad[0].passed)
        XCTAssertEqual(bad[0].detail, "argmax agrees on 1/2 tokens (all cases 0.500 < 0.99)")
        // The threshold is the tolerance's (the manifest's): 80% agreement, pooled over the cases, as int8's.
        let int8 = SelfTest.artifact(name: "m", runner: Fixed([0, 1, 5, 0, 9, 0, 0, 0, 0]), golden: golden,
                                     tolerance: Tolerance(maxAbsDiff: 0.25, minCosine: 0.99, minArgmaxAgreement: 0.8))
        XCTAssertFalse(int8[0].passed)
        XCTAssertEqual(int8[0].detail, "argmax agrees on 1/2 tokens (all cases 0.500 < 0.80)")
        // A format 1.1 manifest recorded no agreement threshold: the check fails, asking for a re-export.
        let old = SelfTest.artifact(name: "m", runner: Fixed([0, 1, 5, 9, 1, 0, 7, 7, 0]), golden: golden,
                                    tolerance: Tolerance(maxAbsDiff: 1e-3, minCosine: 0.9999))
        XCTAssertFalse(old[0].passed)
        XCTAssertTrue(old[0].detail.contains("re-export"), old[0].detail)
    }
}
