import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import WeirCore
import WeirSim

/// `weir-sim proxy`: a TCP proxy that cuts and restores the link.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "A TCP proxy that cuts and restores the link on a schedule or on signals.",
        discussion: """
        --schedule "up 20s, down 10s, ..." runs the steps in order; a trailing '...' repeats \
        them forever, otherwise the link stays in the last state (the last step may omit its \
        duration: "up 30s, down 20s, up"). The default is "up".

        SIGUSR1 cuts the link, SIGUSR2 restores it; a signal holds until the schedule's next step.

        Down, in --down-mode refuse (default): open connections are reset and new ones are \
        accepted and closed at once. In --down-mode hold: connections stay open but nothing \
        moves, and new ones wait, until the link is back (a black hole; clients notice only \
        by timing out). Every transition is printed.
        """
    )

    @Option(help: "Where to listen (HOST:PORT; port 0 picks a free one).")
    var listen: HostPort

    @Option(help: "Where to forward (HOST:PORT).")
    var upstream: HostPort

    @Option(help: "The link's schedule.")
    var schedule = "up"

    @Option(help: "Latency added to every chunk, each direction (e.g. 50ms).")
    var latency = DurationArgument(.zero)

    @Option(help: "Bandwidth cap per direction in bytes per second (e.g. 256KiB).")
    var bandwidth: String?

    @Option(help: "What a down link does: refuse or hold.")
    var downMode = "refuse"

    @Option(help: "Log level for diagnostics on stderr.")
    var logLevel: Logger.Level = .warning

    func run() async throws {
        bootstrapOutput(level: logLevel)
        let logger = Logger(label: "weir.sim.proxy")
        try await exitOnError {
            let parsed = try LinkSchedule.parse(schedule)
            var cap: Int?
            if let bandwidth {
                let bytes = try ByteSize.parse(bandwidth)
                guard bytes > 0, bytes <= Int64(Int32.max) else { throw WeirError(.badArgument, "--bandwidth \(bandwidth) must be more than 0 bytes/s") }
                cap = Int(bytes)
            }
            guard let mode = LinkProxy.DownMode(rawValue: downMode) else {
                throw WeirError(.badArgument, "--down-mode '\(downMode.prefix(20))' (refuse or hold expected)")
            }
            let configuration = LinkProxy.Configuration(
                listenHost: listen.host, listenPort: listen.port, upstreamHost: upstream.host, upstreamPort: upstream.port,
                latency: latency.duration, bandwidth: cap, downMode: mode)
            let began = ContinuousClock.now
            let proxy = LinkProxy(configuration: configuration, logger: logger) { up, reason, connections in
                let elapsed = began.duration(to: .now).milliseconds
                say("[\(elapsed / 1000).\((elapsed % 1000) / 100)s] link \(up ? "UP" : "DOWN") (\(reason))" + (connections > 0 ? ", \(connections) connections \(up ? "resumed" : mode == .refuse ? "reset" : "held")" : ""))
            }
            let listenHost = listen.host
            let upstreamText = upstream.description
            let service = ProxyService(proxy: proxy, schedule: parsed) { port in
                say("weir-sim proxy listening on \(listenHost):\(port) → \(upstreamText), schedule \"\(parsed)\", down mode \(mode.rawValue)")
            }
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            do {
                try await group.run()
            } catch {
                throw (error as? WeirError) ?? WeirError(.internal, "the proxy failed", cause: error)
            }
        }
    }
}
