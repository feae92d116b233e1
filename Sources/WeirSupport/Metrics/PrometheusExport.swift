import Metrics
import Prometheus
import Synchronization

/// The process-wide Prometheus registry behind swift-metrics. Weir's programs count
/// through swift-metrics (`Counter(label:)`, `Gauge(label:)`, `Timer(label:)`) and
/// serve this registry's text at `GET /metrics`.
///
/// ```swift
/// PrometheusExport.bootstrap()                  // once, at start-up (idempotent)
/// Counter(label: "weir_cloud_batches_total").increment()
/// let text = PrometheusExport.render()          // Prometheus text format
/// ```
///
/// `MetricsSystem.bootstrap` may run only once per process; `bootstrap()` remembers that
/// it ran, so tests that start several servers in one process can call it freely.
public enum PrometheusExport {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Installs the Prometheus factory as the swift-metrics backend (first call only) and
    /// returns the registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        state.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            // Timers in seconds, with buckets that suit commit latencies (1 ms … 10 s).
            factory.defaultDurationHistogramBuckets = [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            ]
            MetricsSystem.bootstrap(factory)
            registry = created
            return created
        }
    }

    /// The registry's metrics in Prometheus text format (bootstraps if needed).
    public static func render() -> String {
        bootstrap().emitToString()
    }

    /// The Content-Type of `render()`'s output.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
