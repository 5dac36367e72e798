import Foundation

/// Every failure PocketBertKit reports. Each message names the problem and the fix in one line,
/// as the Python CLI's `PocketBertError` does, so the app can show it as is.
public enum PocketBertError: Error, Equatable, Sendable, LocalizedError {
    /// A file the bundle contract requires is not there.
    case missingFile(path: String)
    /// `manifest.json` (or `golden.json`) has a major schema version this build does not read.
    case unsupportedSchemaVersion(file: String, found: String, supportedMajor: Int)
    /// A JSON file is not what the bundle contract describes.
    case invalidBundle(String)
    /// The manifest lists an artifact whose file is not in the bundle folder.
    case missingArtifact(file: String)
    /// A file's sha256 differs from the one the manifest recorded.
    case checksumMismatch(file: String, expected: String, actual: String)
    /// No artifact of the asked format / quantization / sequence length.
    case noArtifact(String)
    /// The vocabulary cannot tokenize (no special tokens, empty file).
    case invalidVocabulary(String)
    /// A runtime (Core ML, ExecuTorch) failed to load or run.
    case runtime(String)

    public var errorDescription: String? {
        switch self {
        case let .missingFile(path):
            return "\(path) is missing; copy the whole bundle folder that `pocketbert export` wrote"
        case let .unsupportedSchemaVersion(file, found, major):
            return "\(file) has schema_version \(found) but this app reads major version \(major); "
                + "re-export the bundle with a matching pocketbert or update the app"
        case let .invalidBundle(message):
            return message
        case let .missingArtifact(file):
            return "the manifest lists \(file) but the bundle folder does not contain it; copy the whole bundle again"
        case let .checksumMismatch(file, expected, actual):
            return "\(file) has sha256 \(actual.prefix(12))… but the manifest expects \(expected.prefix(12))…; "
                + "the copy is damaged or was changed after export: copy the bundle again"
        case let .noArtifact(message):
            return message
        case let .invalidVocabulary(message):
            return message
        case let .runtime(message):
            return message
        }
    }
}
