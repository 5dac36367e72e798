import Foundation

/// A pocketbert bundle folder opened for use: manifest, tokenizer and golden cases, with the
/// artifacts found through the manifest only (file names are never parsed).
public struct ModelBundle: Sendable {
    public static let manifestFile = "manifest.json"

    public let directory: URL
    public let manifest: BundleManifest
    public let tokenizer: WordPieceTokenizer
    public let golden: GoldenFile

    /// Opens a bundle: reads `manifest.json` (refusing another major schema version), the vocabulary,
    /// and `golden.json`, whose sha256 must match the manifest.
    ///
    /// Artifacts are not hashed here (that reads every model file); call `verify(_:)` before loading one.
    public static func open(_ directory: URL) throws -> ModelBundle {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PocketBertError.missingFile(path: directory.lastPathComponent)
        }
        let manifest = try BundleManifest.read(from: directory.appendingPathComponent(manifestFile))
        let vocabURL = directory.appendingPathComponent(manifest.tokenizer.vocabFile)
        let tokenizer = try WordPieceTokenizer(vocabURL: vocabURL, spec: manifest.tokenizer)
        let goldenURL = directory.appendingPathComponent(manifest.golden.file)
        let actual = try FileHash.sha256(file: goldenURL)
        guard actual == manifest.golden.sha256 else {
            throw PocketBertError.checksumMismatch(file: manifest.golden.file, expected: manifest.golden.sha256, actual: actual)
        }
        let golden = try GoldenFile.read(from: goldenURL)
        return ModelBundle(directory: directory, manifest: manifest, tokenizer: tokenizer, golden: golden)
    }

    public var name: String { manifest.model.name }
    public var task: ModelTask { manifest.model.task }
    public var seqLens: [Int] { manifest.seqLens }

    /// Artifacts of the given formats (`coreml`, `executorch`), in manifest order.
    public func artifacts(formats: Set<String>) -> [Artifact] {
        manifest.artifacts.filter { formats.contains($0.format) }
    }

    /// The quantizations available for `format`, in manifest order.
    public func quants(format: String) -> [String] {
        var seen: [String] = []
        for a in manifest.artifacts where a.format == format && !seen.contains(a.quant) { seen.append(a.quant) }
        return seen
    }

    /// The artifact of `format`/`quant` for bucket `seqLen`.
    public func artifact(format: String, quant: String, seqLen: Int) throws -> Artifact {
        guard let a = manifest.artifacts.first(where: { $0.format == format && $0.quant == quant && $0.seqLen == seqLen }) else {
            throw PocketBertError.noArtifact(
                "the bundle has no \(format) \(quant) artifact for seq_len \(seqLen); export with --formats \(format) --quant \(quant)")
        }
        return a
    }

    /// Where `artifact` lives; throws `missingArtifact` when it is not in the folder.
    public func url(of artifact: Artifact) throws -> URL {
        let url = directory.appendingPathComponent(artifact.file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PocketBertError.missingArtifact(file: artifact.file)
        }
        return url
    }

    /// Checks that `artifact` is in the folder and has the sha256 the manifest recorded.
    @discardableResult
    public func verify(_ artifact: Artifact) throws -> URL {
        let url = try url(of: artifact)
        let actual = try FileHash.sha256(path: url)
        guard actual == artifact.sha256 else {
            throw PocketBertError.checksumMismatch(file: artifact.file, expected: artifact.sha256, actual: actual)
        }
        return url
    }

    /// The thresholds `artifact` is held to: the manifest's entry for its format/quant.
    ///
    /// - Throws: `PocketBertError.invalidBundle` when the manifest has none (`open` already refuses such a bundle).
    public func tolerance(for artifact: Artifact) throws -> Tolerance {
        guard let tolerance = manifest.tolerance(format: artifact.format, quant: artifact.quant) else {
            throw PocketBertError.invalidBundle(
                "manifest.json: no tolerance for \(artifact.format)/\(artifact.quant); re-export the bundle")
        }
        return tolerance
    }

    /// Tokenizes `text` as the deployed model expects it (bucket chosen, truncated, padded).
    public func encode(_ text: String) -> EncodedText {
        tokenizer.encode(text, buckets: manifest.seqLens)
    }

    /// How the app calls `format`/`quant` for `text`: ids truncated to that family's largest bucket, the
    /// artifact of the smallest bucket that holds them (else the largest), and its input: padded to the
    /// bucket, or, for a dynamic-length artifact, the ids at their own length. The bench's real-length rows
    /// call artifacts the same way (runtime_bench/lengths.py); tests/apps/test_conformance.py holds both to it.
    public func call(format: String, quant: String, text: String) throws -> (artifact: Artifact, input: EncodedText) {
        let family = manifest.artifacts.filter { $0.format == format && $0.quant == quant }.sorted { $0.seqLen < $1.seqLen }
        guard let largest = family.last else {
            throw PocketBertError.noArtifact(
                "the bundle has no \(format) \(quant) artifact; export with --formats \(format) --quant \(quant)")
        }
        let full = tokenizer.encode(text)
        let ids = tokenizer.encode(text, maxLength: largest.seqLen)
        let artifact = family.first(where: { $0.seqLen >= ids.count }) ?? largest
        let input = EncodedText(ids: ids, seqLen: artifact.inputLength(tokens: ids.count), padId: tokenizer.padId,
                                truncated: full.count > ids.count)
        return (artifact, input)
    }

    /// The golden self-test of the tokenizer alone (no model needed).
    public func tokenizerSelfTest() -> [CheckResult] {
        SelfTest.tokenizer(tokenizer, golden: golden, seqLens: manifest.seqLens)
    }
}

/// Finds bundles: every folder holding a `manifest.json` directly under the given roots (the app's
/// Documents folder, a `Bundles` folder among the app's resources).
public enum BundleDiscovery {
    public static func bundleDirectories(in roots: [URL]) -> [URL] {
        var found: [URL] = []
        let fm = FileManager.default
        for root in roots {
            if fm.fileExists(atPath: root.appendingPathComponent(ModelBundle.manifestFile).path) {
                found.append(root)
                continue
            }
            let children = (try? fm.contentsOfDirectory(at: root, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
            for child in children.sorted(by: { $0.lastPathComponent < $1.lastPathComponent })
            where fm.fileExists(atPath: child.appendingPathComponent(ModelBundle.manifestFile).path) {
                found.append(child)
            }
        }
        return found
    }
}
