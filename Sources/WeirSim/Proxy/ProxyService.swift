import Logging
import ServiceLifecycle
import UnixSignals
import WeirCore

/// `weir-sim proxy` as a service: runs a `LinkProxy`, follows its schedule, and lets
/// SIGUSR1 cut the link and SIGUSR2 restore it (a signal overrides the schedule until
/// its next step). Stops on graceful shutdown.
///
/// ```swift
/// let service = ProxyService(proxy: proxy, schedule: try LinkSchedule.parse("up 20s, down 10s, ..."),
///                            signals: true) { port in print("listening on \(port)") }
/// try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public struct ProxyService: Service {
    public let proxy: LinkProxy
    public let schedule: LinkSchedule
    /// Whether SIGUSR1/SIGUSR2 switch the link.
    public let signals: Bool
    private let onListening: @Sendable (Int) -> Void

    public init(proxy: LinkProxy, schedule: LinkSchedule, signals: Bool = true, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.proxy = proxy
        self.schedule = schedule
        self.signals = signals
        self.onListening = onListening
    }

    public func run() async throws {
        let port = try await proxy.start()
        onListening(port)
        let proxy = self.proxy
        let schedule = self.schedule
        let signals = self.signals
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await proxy.follow(schedule) }
            if signals {
                group.addTask {
                    for await signal in await UnixSignalsSequence(trapping: .sigusr1, .sigusr2) {
                        proxy.setLink(up: signal == .sigusr2, reason: signal == .sigusr2 ? "SIGUSR2" : "SIGUSR1")
                    }
                }
            }
            group.addTask {
                try? await gracefulShutdown()
            }
            // The first task to end is the shutdown waiter (the others run forever or until
            // the schedule ends, which must not stop the proxy).
            while let _ = await group.next() {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
            }
            group.cancelAll()
        }
        await proxy.stop()
    }
}
