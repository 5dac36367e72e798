import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

/// SHA-256 of files and folders, as the manifest records them (pocketbert/files.py `path_sha256`).
///
/// CryptoKit does the hashing on Apple platforms; `PortableSHA256` (FIPS 180-4, plain Swift) is the
/// fallback elsewhere and is tested against CryptoKit and the FIPS vectors.
public enum FileHash {
    /// Hex sha256 of a file's bytes, read in 1 MiB chunks.
    public static func sha256(file url: URL) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw PocketBertError.missingFile(path: url.lastPathComponent)
        }
        defer { try? handle.close() }
        var hasher = Hasher256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(chunk)
        }
        return hasher.finalizeHex()
    }

    /// Hex sha256 of a `.mlpackage` folder, as pocketbert/files.py `path_sha256`: one running hash
    /// over, for each file in sorted relative-path order, its "/"-separated relative path in UTF-8, a
    /// zero byte, then its bytes.
    public static func sha256(folder url: URL) throws -> String {
        let paths = try relativeFilePaths(in: url)
        var hasher = Hasher256()
        for path in paths {
            hasher.update(Data(path.utf8) + Data([0]))
            guard let handle = try? FileHandle(forReadingFrom: url.appendingPathComponent(path)) else {
                throw PocketBertError.missingFile(path: path)
            }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher.update(chunk)
            }
        }
        return hasher.finalizeHex()
    }

    /// Hex sha256 of a file or, for a directory, of its files in sorted order.
    public static func sha256(path url: URL) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw PocketBertError.missingFile(path: url.lastPathComponent)
        }
        return try isDirectory.boolValue ? sha256(folder: url) : sha256(file: url)
    }

    public static func sha256(data: Data) -> String {
        var hasher = Hasher256()
        hasher.update(data)
        return hasher.finalizeHex()
    }

    /// Relative paths ("/"-separated) of the regular files under `root`, sorted as Python sorts
    /// `pathlib.Path`s: component by component, each by code point (= UTF-8 byte) order.
    static func relativeFilePaths(in root: URL) throws -> [String] {
        let rootPath = root.standardizedFileURL.resolvingSymlinksInPath().path
        guard let enumerator = FileManager.default.enumerator(
            at: root, includingPropertiesForKeys: [.isRegularFileKey], options: []) else {
            throw PocketBertError.missingFile(path: root.lastPathComponent)
        }
        var paths: [String] = []
        for case let file as URL in enumerator {
            guard (try? file.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true else { continue }
            let full = file.standardizedFileURL.resolvingSymlinksInPath().path
            guard full.hasPrefix(rootPath + "/") else { continue }
            paths.append(String(full.dropFirst(rootPath.count + 1)))
        }
        return paths.sorted(by: pathPrecedes)
    }

    /// `a < b` for "/"-separated paths compared as lists of components (so "a/b" sorts before "a-b").
    static func pathPrecedes(_ a: String, _ b: String) -> Bool {
        let left = a.split(separator: "/", omittingEmptySubsequences: false)
        let right = b.split(separator: "/", omittingEmptySubsequences: false)
        for (x, y) in zip(left, right) where !x.utf8.elementsEqual(y.utf8) {
            return x.utf8.lexicographicallyPrecedes(y.utf8)
        }
        return left.count < right.count
    }
}

/// Incremental SHA-256: CryptoKit where it exists, `PortableSHA256` otherwise.
struct Hasher256 {
    #if canImport(CryptoKit)
    private var inner = CryptoKit.SHA256()
    mutating func update(_ data: Data) { inner.update(data: data) }
    mutating func finalizeHex() -> String { inner.finalize().map { String(format: "%02x", $0) }.joined() }
    #else
    private var inner = PortableSHA256()
    mutating func update(_ data: Data) { inner.update(data) }
    mutating func finalizeHex() -> String { inner.finalizeHex() }
    #endif
}

/// SHA-256 (FIPS 180-4) in plain Swift, for platforms without CryptoKit.
public struct PortableSHA256: Sendable {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    private var state: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    public init() {}

    public mutating func update(_ data: Data) {
        length &+= UInt64(data.count)
        buffer.append(contentsOf: data)
        var offset = 0
        while buffer.count - offset >= 64 {
            compress(buffer[offset..<(offset + 64)])
            offset += 64
        }
        buffer.removeFirst(offset)
    }

    public mutating func finalizeHex() -> String {
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        while (buffer.count + tail.count) % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        buffer.append(contentsOf: tail)
        var offset = 0
        while offset < buffer.count {
            compress(buffer[offset..<(offset + 64)])
            offset += 64
        }
        buffer = []
        return state.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

    private mutating func compress(_ block: ArraySlice<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        let base = block.startIndex
        for i in 0..<16 {
            w[i] = UInt32(block[base + 4 * i]) << 24 | UInt32(block[base + 4 * i + 1]) << 16
                | UInt32(block[base + 4 * i + 2]) << 8 | UInt32(block[base + 4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = state[0], b = state[1], c = state[2], d = state[3]
        var e = state[4], f = state[5], g = state[6], h = state[7]
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ ch &+ Self.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            h = g; g = f; f = e; e = d &+ t1
            d = c; c = b; b = a; a = t1 &+ t2
        }
        state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
        state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
    }

    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
