import Foundation

/// A fresh directory under the system temp folder, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "tern-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/\(prefix)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A path inside the directory.
    public func file(_ name: String) -> String { "\(path)/\(name)" }
}

/// The media test fixtures, made once per test process by `Tests/TernMediaTests/make-fixtures.sh`
/// (the ffmpeg CLI; installed by `Ops/setup --test`).
public let mediaFixturesDirectory: String = {
    let dir = NSTemporaryDirectory() + "tern-media-fixtures-\(getpid())"
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TernMediaTests/make-fixtures.sh").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: script)
    process.arguments = [dir]
    try! process.run()
    process.waitUntilExit()
    precondition(process.terminationStatus == 0, "make-fixtures.sh failed (is ffmpeg installed? Ops/setup --test installs it)")
    return dir
}()
