import Testing
@testable import WeirSim

/// The watch's arithmetic: Prometheus text, and recognising a backlog and timing its drain.
@Suite struct WatchTests {
    @Test func prometheusTextSumsLabelSetsAndSkipsComments() {
        let text = """
        # HELP weir_edge_buffer_readings Readings waiting.
        # TYPE weir_edge_buffer_readings gauge
        weir_edge_buffer_readings 1234
        weir_edge_filter_drops_total{reason="range"} 3
        weir_edge_filter_drops_total{reason="dedup",device="d:1 2"} 4
        weir_edge_forwarded_readings_total 5e3 1732540000000
        garbage line without a number
        """
        let metrics = PrometheusText(text)
        #expect(metrics.value("weir_edge_buffer_readings") == 1234)
        #expect(metrics.value("weir_edge_filter_drops_total") == 7)
        #expect(metrics.value("weir_edge_forwarded_readings_total") == 5000)
        #expect(metrics.value("missing") == nil)
    }

    /// 1000 readings/s come in; forwarding stops for 10 s, then the backlog goes out at
    /// 20000 readings/s on top of the live stream. Samples every 0.25 s.
    @Test func aBacklogIsRecognisedAndItsDrainTimed() {
        var tracker = BacklogTracker()
        var accepted = 0, forwarded = 0, buffered = 100
        var drains: [BacklogTracker.Drain] = []
        var sawBuilding = false, sawDraining = false
        for step in 0..<120 {
            let t = Double(step) * 0.25
            accepted += 250
            let linkUp = t < 5 || t >= 15
            if linkUp {
                let out = min(buffered + 250 - 100, t >= 15 ? 5000 : 250)
                forwarded += out
                buffered += 250 - out
            } else {
                buffered += 250
            }
            if let drain = tracker.observe(seconds: t, accepted: accepted, buffered: buffered, forwarded: forwarded) { drains.append(drain) }
            if case .building = tracker.state { sawBuilding = true }
            if case .draining = tracker.state { sawDraining = true }
        }
        #expect(sawBuilding)
        #expect(sawDraining)
        #expect(drains.count == 1)
        let drain = try! #require(drains.first)
        #expect(drain.peak >= 10_000 && drain.peak <= 10_200)
        // ~10k backlog plus the live stream at 20k/s: about half a second, timed from the
        // last stalled sample (so up to one sample longer).
        #expect(drain.seconds >= 0.5 && drain.seconds <= 1.0)
        #expect(drain.rate >= 10_000 && drain.rate <= 25_000)
        #expect(tracker.largestDrain == drain)
        #expect(tracker.state == .normal)
    }

    @Test func normalOperationIsNoBacklog() {
        var tracker = BacklogTracker()
        var accepted = 0, forwarded = 0
        for step in 0..<200 {
            accepted += 300
            forwarded += step % 3 == 0 ? 0 : 450   // bursty forwarding, a few hundred buffered
            let buffered = accepted - forwarded
            #expect(tracker.observe(seconds: Double(step) * 0.25, accepted: accepted, buffered: buffered, forwarded: forwarded) == nil)
        }
        #expect(tracker.largestDrain == nil)
    }
}
