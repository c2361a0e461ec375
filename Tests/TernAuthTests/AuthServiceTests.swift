import Foundation
import Logging
import Testing
import TernCore
import TernStore
import TernTestSupport

@testable import TernAuth

/// Records every code "sent", like an SMS gateway would.
final class CapturingSender: CodeSender, @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [(phone: String, code: String)] = []
    var failing = false

    func send(code: String, to phone: String, expiresIn: Duration) async throws {
        if failing { throw TernError(.internalError, "gateway down") }
        lock.withLock { sent.append((phone, code)) }
    }

    var last: (phone: String, code: String)? {
        lock.lock()
        defer { lock.unlock() }
        return sent.last
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return sent.count
    }
}

/// A store, key ring and auth service in a temporary folder, with a manual clock.
final class AuthFixture: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let clock = ManualClock()
    let sender = CapturingSender()
    let store: Store
    let auth: AuthService

    init(_ configure: (inout AuthSettings) -> Void = { _ in }) throws {
        let logger = Logger(label: "test")
        store = try Store(configuration: StoreConfiguration(path: dir.file("store"), mapSize: 64 << 20), logger: logger)
        var settings = AuthSettings()
        configure(&settings)
        let ring = try KeyRing(directory: dir.file("keys"), clock: clock, createIfEmpty: true)
        auth = AuthService(
            store: store, tokens: TokenService(keyRing: ring, clock: clock, accessTTL: settings.accessTTL), settings: settings,
            otpKey: [UInt8](repeating: 9, count: 32), sender: sender, clock: clock, logger: logger)
    }

    func close() async {
        await store.close()
        dir.remove()
    }

    /// Requests and enters a code.
    func login(_ phone: String, device: DeviceInfo = DeviceInfo()) async throws -> LoginGrant {
        let code = try await auth.requestCode(phone: phone, clientIP: "10.0.0.1")
        #expect(sender.last?.code == code)
        return try await auth.verifyCode(phone: phone, code: code, device: device)
    }
}

func expectError(_ code: ErrorCode, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code.rawValue), got success")
    } catch let error as TernError {
        #expect(error.code == code, "\(error)")
    } catch {
        Issue.record("expected \(code.rawValue), got \(error)")
    }
}

@Suite("Phone login, sessions, refresh rotation")
struct AuthServiceTests {
    @Test("first login creates the user and a device; the second finds them")
    func login() async throws {
        let f = try AuthFixture()
        let first = try await f.login("+14155550100", device: DeviceInfo(clientID: "phone-1", name: "Pixel", platform: "android"))
        #expect(first.isNewUser)
        #expect(first.device.clientID == "phone-1")
        #expect(first.device.name == "Pixel")
        let claims = try await f.auth.authenticate(first.accessToken)
        #expect(claims.userID == first.user.id)
        #expect(claims.deviceID == "phone-1")
        let second = try await f.login("+14155550100")
        #expect(!second.isNewUser)
        #expect(second.user.id == first.user.id)
        #expect(second.device.clientID != "phone-1", "no device_id → a new generated device")
        #expect(UUID(uuidString: second.device.clientID) != nil)
        await f.close()
    }

    @Test("codes are stored hashed, expire, and are single-use")
    func codeLifecycle() async throws {
        let f = try AuthFixture()
        let code = try await f.auth.requestCode(phone: "+14155550101", clientIP: "1.1.1.1")
        let stored = try await f.store.read { try $0.otp(phone: "+14155550101") }
        #expect(stored?.codeTag.count == 32)
        #expect(stored?.codeTag != Array(code.utf8))
        f.clock.advance(by: .minutes(5))
        await expectError(.otpExpired) { _ = try await f.auth.verifyCode(phone: "+14155550101", code: code, device: DeviceInfo()) }
        let fresh = try await f.auth.requestCode(phone: "+14155550101", clientIP: "1.1.1.1")
        _ = try await f.auth.verifyCode(phone: "+14155550101", code: fresh, device: DeviceInfo())
        await expectError(.otpExpired) { _ = try await f.auth.verifyCode(phone: "+14155550101", code: fresh, device: DeviceInfo()) }
        await expectError(.otpExpired) { _ = try await f.auth.verifyCode(phone: "+14155550199", code: "123456", device: DeviceInfo()) }
        await f.close()
    }

    @Test("five wrong codes lock the phone; a new code does not unlock it; the lock ends")
    func lockout() async throws {
        let f = try AuthFixture()
        let phone = "+14155550102"
        let code = try await f.auth.requestCode(phone: phone, clientIP: "1.1.1.1")
        let wrong = code == "000000" ? "111111" : "000000"
        for _ in 0..<5 {
            await expectError(.otpInvalid) { _ = try await f.auth.verifyCode(phone: phone, code: wrong, device: DeviceInfo()) }
        }
        await expectError(.otpMaxAttempts) { _ = try await f.auth.verifyCode(phone: phone, code: code, device: DeviceInfo()) }
        await expectError(.otpMaxAttempts) { _ = try await f.auth.requestCode(phone: phone, clientIP: "1.1.1.1") }
        do {
            _ = try await f.auth.requestCode(phone: phone, clientIP: "1.1.1.1")
        } catch let error as TernError {
            #expect(error.retryAfter != nil && error.retryAfter! > 800)
        }
        f.clock.advance(by: .minutes(16))
        _ = try await f.login(phone)
        await f.close()
    }

    @Test("wrong attempts count across re-requests")
    func attemptsSurviveReRequest() async throws {
        let f = try AuthFixture()
        let phone = "+14155550103"
        var code = try await f.auth.requestCode(phone: phone, clientIP: "1.1.1.1")
        for round in 0..<5 {
            let wrong = code == "000000" ? "111111" : "000000"
            await expectError(.otpInvalid) { _ = try await f.auth.verifyCode(phone: phone, code: wrong, device: DeviceInfo()) }
            if round == 2 {
                f.clock.advance(by: .minutes(11))  // past the send window, so a new code may be sent
                code = try await f.auth.requestCode(phone: phone, clientIP: "1.1.1.1")
            }
        }
        await expectError(.otpMaxAttempts) { _ = try await f.auth.verifyCode(phone: phone, code: code, device: DeviceInfo()) }
        await f.close()
    }

    @Test("per-phone and per-IP send limits answer 429 with Retry-After")
    func sendLimits() async throws {
        let f = try AuthFixture { $0.otpIPLimit = .per(.hours(1), 5) }
        for _ in 0..<3 { _ = try await f.auth.requestCode(phone: "+14155550104", clientIP: "1.1.1.1") }
        do {
            _ = try await f.auth.requestCode(phone: "+14155550104", clientIP: "1.1.1.1")
            Issue.record("fourth code in the window must be refused")
        } catch let error as TernError {
            #expect(error.code == .tooManyRequests)
            #expect(error.retryAfter != nil && error.retryAfter! <= 601)
        }
        #expect(f.sender.count == 3)
        _ = try await f.auth.requestCode(phone: "+14155550105", clientIP: "1.1.1.1")
        await expectError(.tooManyRequests) { _ = try await f.auth.requestCode(phone: "+14155550106", clientIP: "1.1.1.1") }
        _ = try await f.auth.requestCode(phone: "+14155550106", clientIP: "2.2.2.2")
        f.clock.advance(by: .minutes(11))
        _ = try await f.auth.requestCode(phone: "+14155550104", clientIP: "3.3.3.3")
        await f.close()
    }

    @Test("malformed input is a 400, never a crash")
    func validation() async throws {
        let f = try AuthFixture()
        await expectError(.validation) { _ = try await f.auth.requestCode(phone: "4155550100", clientIP: "1") }
        await expectError(.validation) { _ = try await f.auth.requestCode(phone: "+1 415", clientIP: "1") }
        await expectError(.otpInvalid) { _ = try await f.auth.verifyCode(phone: "+14155550100", code: "12ab56", device: DeviceInfo()) }
        await expectError(.validation) {
            _ = try await f.auth.verifyCode(phone: "+14155550100", code: "123456", device: DeviceInfo(clientID: "bad id"))
        }
        await expectError(.validation) {
            _ = try await f.auth.verifyCode(phone: "+14155550100", code: "123456", device: DeviceInfo(platform: "symbian"))
        }
        f.sender.failing = true
        await expectError(.deliveryFailed) { _ = try await f.auth.requestCode(phone: "+14155550100", clientIP: "1") }
        await f.close()
    }

    @Test("refresh rotates; replaying a rotated token revokes the whole session")
    func refreshReuse() async throws {
        let f = try AuthFixture()
        let grant = try await f.login("+14155550107")
        let second = try await f.auth.refresh(token: grant.refreshToken)
        #expect(second.refreshToken != grant.refreshToken)
        _ = try await f.auth.authenticate(second.accessToken)
        let third = try await f.auth.refresh(token: second.refreshToken)
        // Replay of the first (rotated) token: reuse.
        await expectError(.tokenReused) { _ = try await f.auth.refresh(token: grant.refreshToken) }
        // The whole session is dead: the newest refresh token and every access token.
        await expectError(.tokenInvalid) { _ = try await f.auth.refresh(token: third.refreshToken) }
        await expectError(.sessionRevoked) { _ = try await f.auth.authenticate(third.accessToken) }
        await expectError(.sessionRevoked) { _ = try await f.auth.authenticate(grant.accessToken) }
        await expectError(.tokenInvalid) { _ = try await f.auth.refresh(token: "never-issued") }
        await f.close()
    }

    @Test("logout revokes the session at once, by refresh token or by access token")
    func logout() async throws {
        let f = try AuthFixture()
        let a = try await f.login("+14155550108", device: DeviceInfo(clientID: "a"))
        let b = try await f.login("+14155550108", device: DeviceInfo(clientID: "b"))
        #expect(try await f.auth.logout(refreshToken: a.refreshToken, claims: nil))
        await expectError(.sessionRevoked) { _ = try await f.auth.authenticate(a.accessToken) }
        await expectError(.tokenInvalid) { _ = try await f.auth.refresh(token: a.refreshToken) }
        _ = try await f.auth.authenticate(b.accessToken)
        let claims = try f.auth.tokens.verify(b.accessToken)
        #expect(try await f.auth.logout(refreshToken: nil, claims: claims))
        await expectError(.sessionRevoked) { _ = try await f.auth.authenticate(b.accessToken) }
        #expect(try await !f.auth.logout(refreshToken: "unknown", claims: nil))
        await f.close()
    }

    @Test("logging in again on the same device replaces its old session")
    func sameDevice() async throws {
        let f = try AuthFixture()
        let old = try await f.login("+14155550109", device: DeviceInfo(clientID: "install-1"))
        let new = try await f.login("+14155550109", device: DeviceInfo(clientID: "install-1"))
        #expect(new.device.number == old.device.number)
        await expectError(.sessionRevoked) { _ = try await f.auth.authenticate(old.accessToken) }
        await expectError(.tokenInvalid) { _ = try await f.auth.refresh(token: old.refreshToken) }
        _ = try await f.auth.authenticate(new.accessToken)
        let devices = try await f.store.read { try $0.devices(of: new.user.id) }
        #expect(devices.count == 1)
        await f.close()
    }

    @Test("sessions end when their refresh validity runs out")
    func sessionExpiry() async throws {
        let f = try AuthFixture { $0.refreshTTL = .hours(2); $0.accessTTL = .minutes(15) }
        let grant = try await f.login("+14155550110")
        f.clock.advance(by: .hours(1))
        let pair = try await f.auth.refresh(token: grant.refreshToken)
        f.clock.advance(by: .minutes(100))
        let again = try await f.auth.refresh(token: pair.refreshToken)  // sliding: still within 2 h of the last refresh
        f.clock.advance(by: .hours(3))
        await expectError(.tokenInvalid) { _ = try await f.auth.refresh(token: again.refreshToken) }
        #expect(try await f.auth.purgeExpired() > 0)
        await f.close()
    }
}
