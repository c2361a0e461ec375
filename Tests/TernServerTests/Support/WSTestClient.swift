import Foundation
import NIOCore
import NIOWebSocket
import Testing
import TernWSClient

/// A WebSocket client for tests: frames arrive in order in an async stream; helpers wait
/// for the next frame (or the next frame of an event) with a generous deadline.
final class WSTestClient: @unchecked Sendable {
    let connection: WSConnection
    private let queue: FrameQueue

    private init(connection: WSConnection, queue: FrameQueue) {
        self.connection = connection
        self.queue = queue
    }

    /// Connects with `?access_token=` (or the header with `useHeader`).
    static func connect(
        port: Int, token: String?, useHeader: Bool = false, path: String = "/ws", receiveBufferSize: Int? = nil, answersPings: Bool = true
    ) async throws -> WSTestClient {
        let queue = FrameQueue()
        var uri = path
        var headers: [(String, String)] = []
        if let token {
            if useHeader { headers.append(("Authorization", "Bearer \(token)")) } else { uri += "?access_token=\(token)" }
        }
        let connection = try await WSConnection.connect(port: port, path: uri, headers: headers, receiveBufferSize: receiveBufferSize, answersPings: answersPings) { frame in
            queue.push(frame)
        }
        return WSTestClient(connection: connection, queue: queue)
    }

    /// The next frame, or nil when `timeout` passed.
    func nextFrame(timeout: Duration = .seconds(10)) async -> WSFrame? {
        await queue.pop(timeout: timeout)
    }

    /// The next JSON text frame (skipping pings/pongs), or nil.
    func next(timeout: Duration = .seconds(10)) async -> [String: Any]? {
        while let frame = await nextFrame(timeout: timeout) {
            if frame.opcode == .text { return frame.json }
            if frame.opcode == .connectionClose { return ["event": "__closed__", "code": Int(frame.closeCode ?? 0)] }
        }
        return nil
    }

    /// The next frame whose event is `event`; other frames are returned in `skipped`.
    func next(event: String, timeout: Duration = .seconds(10)) async -> (frame: [String: Any]?, skipped: [[String: Any]]) {
        var skipped: [[String: Any]] = []
        while let frame = await next(timeout: timeout) {
            if frame["event"] as? String == event { return (frame, skipped) }
            skipped.append(frame)
        }
        return (nil, skipped)
    }

    /// Frames arriving within `window` (for "nothing else arrives" checks).
    func drain(for window: Duration) async -> [[String: Any]] {
        var out: [[String: Any]] = []
        while let frame = await next(timeout: window) { out.append(frame) }
        return out
    }

    func send(_ event: String, _ data: [String: Any]) {
        connection.send(json: ["event": event, "data": data])
    }

    /// Several frames in one write and flush (usually one read burst on the server).
    func sendTogether(_ frames: [(event: String, data: [String: Any])]) {
        connection.send(texts: frames.map { Array(try! JSONSerialization.data(withJSONObject: ["event": $0.event, "data": $0.data])) })
    }

    func close() async { await connection.close() }
}

extension Dictionary where Key == String, Value == Any {
    var event: String? { self["event"] as? String }
    var data: [String: Any] { self["data"] as? [String: Any] ?? [:] }
    var seq: Int? { self["seq"] as? Int }
}

/// Frames in arrival order, with waiting and a timeout.
final class FrameQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [WSFrame] = []
    private var waiter: (id: Int, continuation: CheckedContinuation<WSFrame?, Never>)?
    private var nextID = 0

    func push(_ frame: WSFrame) {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.continuation.resume(returning: frame)
        } else {
            buffer.append(frame)
            lock.unlock()
        }
    }

    private func expire(_ id: Int) {
        lock.lock()
        guard let waiter, waiter.id == id else {
            lock.unlock()
            return
        }
        self.waiter = nil
        lock.unlock()
        waiter.continuation.resume(returning: nil)
    }

    func pop(timeout: Duration) async -> WSFrame? {
        return await withCheckedContinuation { (continuation: CheckedContinuation<WSFrame?, Never>) in
            lock.lock()
            if !buffer.isEmpty {
                let frame = buffer.removeFirst()
                lock.unlock()
                continuation.resume(returning: frame)
                return
            }
            nextID += 1
            let id = nextID
            waiter = (id, continuation)
            lock.unlock()
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }
}
