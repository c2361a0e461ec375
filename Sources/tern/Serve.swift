import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import TernConfig
import TernOps
import TernServer

/// `tern serve`: run the server until SIGTERM/SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the Tern server (the default command).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .customLong("ready-file"), help: "Write {\"port\":…,\"pid\":…,\"admin_port\":…} to this file once listening.")
    var readyFile: String?

    mutating func run() async throws {
        let configuration = try options.load()
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        factory.valueHistogramBuckets["tern_store_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]
        MetricsSystem.bootstrap(factory)

        let logger = Logger(label: "tern")
        logger.info("starting", metadata: ["tern.allocator": "\(Allocator.description)"])
        if configuration.devMode {
            logger.warning("dev mode is on: login codes are echoed in responses and rate limits are relaxed")
        }
        let server = try TernServer(configuration: configuration, logger: logger, metricsText: { registry.emitToString() })
        let readyFile = self.readyFile
        try await server.run(handleSignals: true) { ports in
            guard let readyFile else { return }
            let admin = ports.admin.map { ",\"admin_port\":\($0)" } ?? ""
            let json = "{\"port\":\(ports.http),\"pid\":\(getpid())\(admin)}\n"
            try? json.write(toFile: readyFile + ".tmp", atomically: false, encoding: .utf8)
            rename(readyFile + ".tmp", readyFile)
        }
    }
}
