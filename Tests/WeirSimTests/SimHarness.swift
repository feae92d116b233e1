import Foundation
import WeirCore
import WeirTestSupport
@testable import WeirSim

/// The pieces of an end-to-end run, started in a test folder: mosquitto, weir-cloud and
/// weir-edge as real processes, the link proxy in-process between edge and cloud, and
/// `weir-sim run` as a real process. `stopAll()` stops every one of them.
final class SimHarness: Sendable {
    static let gateway = "gw-sim"
    static let token = "sim-token-\(UInt32.random(in: 0...UInt32.max))"

    let dir: TemporaryDirectory
    let broker: MosquittoBroker
    let cloudPort: Int
    let proxy: LinkProxy
    let proxyPort: Int
    let edgeConfig: String
    private let processes = ProcessBox()

    var truthPath: String { "\(dir.path)/truth.db" }
    var cloudURL: String { "http://127.0.0.1:\(cloudPort)" }

    /// Starts broker, cloud, proxy and edge.
    static func start(windows: [String] = ["10s", "60s"]) async throws -> SimHarness {
        let dir = try TemporaryDirectory(prefix: "sim-e2e")
        let broker = try await MosquittoBroker.start(in: dir.path)
        let cloud: CloudProcess
        do {
            cloud = try await CloudProcess.start(in: dir.path, tokens: [gateway: token], windows: windows)
        } catch {
            await broker.stop()
            throw error
        }
        let proxy = LinkProxy(configuration: .init(listenHost: "127.0.0.1", listenPort: 0, upstreamHost: "127.0.0.1", upstreamPort: cloud.port))
        let proxyPort = try await proxy.start()
        let edgeConfig = "\(dir.path)/weir-edge.yaml"
        try """
        gateway: \(gateway)
        mqtt:
          url: \(broker.url)
        buffer:
          path: \(dir.path)/weir-edge.db
        uplink:
          url: http://127.0.0.1:\(proxyPort)
          token: "\(token)"
          backoff_cap: 1s
          timeout: 5s
        metrics:
          listen: "off"
        """.write(toFile: edgeConfig, atomically: true, encoding: .utf8)
        let harness = SimHarness(dir: dir, broker: broker, cloudPort: cloud.port, proxy: proxy, proxyPort: proxyPort, edgeConfig: edgeConfig)
        harness.processes.set(cloud: cloud)
        do {
            harness.processes.set(edge: try await EdgeProcess.start(config: edgeConfig, in: dir.path))
        } catch {
            await harness.stopAll()
            throw error
        }
        return harness
    }

    private init(dir: TemporaryDirectory, broker: MosquittoBroker, cloudPort: Int, proxy: LinkProxy, proxyPort: Int, edgeConfig: String) {
        self.dir = dir
        self.broker = broker
        self.cloudPort = cloudPort
        self.proxy = proxy
        self.proxyPort = proxyPort
        self.edgeConfig = edgeConfig
    }

    /// Starts `weir-sim run` against the broker, writing the truth into the test folder.
    func startSimulator(_ arguments: [String]) throws -> ManagedProcess {
        let process = try ManagedProcess.start(
            name: "weir-sim", executable: PackagePaths.program("weir-sim"),
            arguments: ["run", "--broker", broker.url, "--truth", truthPath] + arguments, logDirectory: dir.path)
        processes.set(sim: process)
        return process
    }

    /// SIGTERM to weir-cloud, then the same cloud (port, store) again.
    func restartCloud() async throws {
        if let cloud = processes.cloud { await cloud.stop() }
        processes.set(cloud: try await CloudProcess.start(in: dir.path, port: cloudPort, tokens: [Self.gateway: Self.token], windows: ["10s", "60s"]))
    }

    /// Stops weir-edge (SIGTERM, or SIGKILL when `kill`) and starts it again on the same buffer.
    func restartEdge(kill: Bool) async throws {
        if let edge = processes.edge {
            if kill { await edge.kill() } else { await edge.stop() }
        }
        processes.set(edge: try await EdgeProcess.start(config: edgeConfig, in: dir.path))
    }

    /// The verifier for this run's truth and cloud.
    func verifier(allowLoss: Int = 0) throws -> Verifier {
        Verifier(truth: try TruthStore.open(path: truthPath), cloud: try CloudClient(baseURL: cloudURL, token: CloudProcess.readerToken),
                 options: .init(sizes: [10_000, 60_000], allowLoss: allowLoss))
    }

    /// The last lines of every process's output, for a failure message.
    func logs() -> String {
        [processes.sim, processes.edge?.process, processes.cloud?.process, broker.process]
            .compactMap { $0?.outputTail(lines: 15) }.joined(separator: "\n")
    }

    func stopAll() async {
        if let sim = processes.sim { await sim.terminate(grace: .seconds(5)) }
        if let edge = processes.edge { await edge.stop(grace: .seconds(10)) }
        await proxy.stop()
        if let cloud = processes.cloud { await cloud.stop() }
        await broker.stop()
    }

    func removeFolder() { dir.remove() }
}

/// The harness's processes, replaced on restarts.
private final class ProcessBox: @unchecked Sendable {
    // Guarded by `lock`: tests replace processes from one task at a time, `stopAll` reads them.
    private let lock = NSLock()
    private var _cloud: CloudProcess?
    private var _edge: EdgeProcess?
    private var _sim: ManagedProcess?

    var cloud: CloudProcess? { lock.withLock { _cloud } }
    var edge: EdgeProcess? { lock.withLock { _edge } }
    var sim: ManagedProcess? { lock.withLock { _sim } }
    func set(cloud: CloudProcess) { lock.withLock { _cloud = cloud } }
    func set(edge: EdgeProcess) { lock.withLock { _edge = edge } }
    func set(sim: ManagedProcess) { lock.withLock { _sim = sim } }
}
