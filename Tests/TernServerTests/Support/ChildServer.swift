import Foundation
import Testing
import TernTestSupport

/// The `tern` executable built next to the test bundle.
func ternExecutable() -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tern")
}

/// Runs `tern` with `arguments` to completion; returns exit status, stdout and stderr.
func runTern(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = ternExecutable()
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TERN_") && $0.key != "AUTH_DEV_MODE" }
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// A `tern serve` child process on a free port, with its own data folder.
final class ChildServer: @unchecked Sendable {
    let dataDirectory: String
    let process: Process
    let port: Int
    /// The admin listener's port (from the ready file).
    let adminPort: Int?
    let logPath: String

    /// Starts `tern serve` and waits (up to 60 s) until it has written its ready file.
    static func start(dataDirectory: String, extraArguments: [String] = [], environment: [String: String] = ["AUTH_DEV_MODE": "true"]) async throws -> ChildServer {
        let readyFile = dataDirectory + "-ready.json"
        try? FileManager.default.removeItem(atPath: readyFile)
        let logPath = dataDirectory + "-server.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = ternExecutable()
        process.arguments = ["serve", "--port", "0", "--set", "admin.port=0", "--data", dataDirectory, "--ready-file", readyFile] + extraArguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TERN_") && $0.key != "AUTH_DEV_MODE" }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let data = FileManager.default.contents(atPath: readyFile),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Int], let port = json["port"]
            {
                #expect(json["pid"] == Int(process.processIdentifier), "the ready file names the server's own pid")
                return ChildServer(dataDirectory: dataDirectory, process: process, port: port, adminPort: json["admin_port"], logPath: logPath)
            }
            if !process.isRunning {
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw ChildServerError.exited(process.terminationStatus, output)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw ChildServerError.notReady
    }

    private init(dataDirectory: String, process: Process, port: Int, adminPort: Int?, logPath: String) {
        self.dataDirectory = dataDirectory
        self.process = process
        self.port = port
        self.adminPort = adminPort
        self.logPath = logPath
    }

    /// `kill -9`: no shutdown code runs.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then wait for the exit; returns the exit status.
    func terminate() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

enum ChildServerError: Error {
    case exited(Int32, String)
    case notReady
}
