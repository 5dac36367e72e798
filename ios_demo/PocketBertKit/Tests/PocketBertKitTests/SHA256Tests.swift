import XCTest
@testable import PocketBertKit

/// The sha256 the manifest records: of a file, and of a `.mlpackage` folder (pocketbert/files.py `path_sha256`).
final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(FileHash.sha256(data: Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(FileHash.sha256(data: Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testPortableImplementationMatchesAcrossBlockBoundaries() {
        let cases: [(Data, String)] = [
            (Data("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (Data(repeating: UInt8(ascii: "a"), count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
            (Data((0..<1280).map { UInt8($0 % 256) }), "d414b085826eb06778483ba35564dc849e643359f69ed9747878ba6e54985bed"),
        ]
        for (data, want) in cases {
            var whole = PortableSHA256()
            whole.update(data)
            XCTAssertEqual(whole.finalizeHex(), want)
            var pieces = PortableSHA256()  // odd chunk sizes cross the 64-byte blocks
            var offset = 0
            while offset < data.count {
                let end = min(data.count, offset + 37)
                pieces.update(data.subdata(in: offset..<end))
                offset = end
            }
            XCTAssertEqual(pieces.finalizeHex(), want)
            XCTAssertEqual(FileHash.sha256(data: data), want)
        }
    }

    func testFileHashOfTheFixtureGoldenMatchesTheManifest() throws {
        let bundle = try Fixture.bundle()
        XCTAssertEqual(try FileHash.sha256(file: Fixture.directory.appendingPathComponent("golden.json")), bundle.manifest.golden.sha256)
    }

    /// The same folder hashed by Python: `path_sha256` gave dd6a2621... (paths sorted as pathlib sorts:
    /// by component, so "Data/..." comes before "Data-b/...").
    func testMLPackageFolderHashMatchesPython() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pkg-\(UUID().uuidString)")
            .appendingPathComponent("fake.mlpackage")
        let files: [(String, String)] = [("Manifest.json", "{}"), ("Data/com.apple.CoreML/model.mlmodel", "model"),
                                         ("Data-b/w.bin", "x"), ("Data/a.bin", "z")]
        for (path, content) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content.utf8).write(to: url)
        }
        XCTAssertEqual(try FileHash.relativeFilePaths(in: root),
                       ["Data/a.bin", "Data/com.apple.CoreML/model.mlmodel", "Data-b/w.bin", "Manifest.json"])
        XCTAssertEqual(try FileHash.sha256(path: root), "dd6a262147c10de9a069c6326b10e19c6b0a3a8768eec02c94ee40ebb6a8b2a3")
    }
}
