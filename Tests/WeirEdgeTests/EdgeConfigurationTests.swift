import Foundation
import Testing
import WeirCore
import WeirEdge
import WeirTestSupport

@Suite("weir-edge configuration")
struct EdgeConfigurationTests {
    @Test("the documented edge/weir-edge.yaml loads with its defaults, lists of mappings included")
    func exampleFileLoads() async throws {
        let config = try EdgeConfiguration.load(file: "\(PackagePaths.root)/edge/weir-edge.yaml", environment: [:])
        #expect(config.gateway == "gw-1")
        #expect(config.mqtt.url == "mqtt://127.0.0.1:1883")
        #expect(config.mqtt.subscriptions.count == 1)
        #expect(config.mqtt.subscriptions[0].topic.subscription == "devices/+/telemetry")
        #expect(config.mqtt.subscriptions[0].format == .json)
        #expect(config.buffer.flushInterval == .milliseconds(100))
        #expect(config.buffer.maxBytes == 1 << 30)
        #expect(config.buffer.maxAge == .seconds(7 * 86_400))
        #expect(config.uplink.replay == .oldestFirst)
        #expect(config.uplink.bandwidth == nil)
        #expect(config.filters.count == 1)
        #expect(config.filters[0].match == "*/temp")
        #expect(config.filters[0].range == RangeSpec(min: -50, max: 150))
        #expect(config.filters[0].deadband == DeadbandSpec(abs: 0.2, heartbeatMs: 60_000))
        #expect(config.metrics.listen == "127.0.0.1:9464")
        #expect(config.liveness.stallAfter == .seconds(10))
    }

    @Test("every key can be overridden from the environment, list items by position")
    func environmentOverrides() async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("e.yaml", """
                gateway: gw-1
                mqtt:
                  subscriptions:
                    - topic: a/{device}
                      format: json
                    - topic: b/{device}/x
                      format: line
                filters:
                  - match: "*/temp"
                    range: {min: 0, max: 10}
                """)
            let config = try EdgeConfiguration.load(file: file, environment: [
                "WEIR_EDGE_GATEWAY": "gw-9",
                "WEIR_EDGE_UPLINK_URL": "http://10.0.0.1:9000",
                "WEIR_EDGE_BUFFER_MAX_BYTES": "512MiB",
                "WEIR_EDGE_MQTT_SUBSCRIPTIONS_1_FORMAT": "senml",
                "WEIR_EDGE_FILTERS_0_RANGE_MAX": "99.5",
                "WEIR_EDGE_UPLINK_REPLAY": "live-first",
            ])
            #expect(config.gateway == "gw-9")
            #expect(config.uplink.url == "http://10.0.0.1:9000")
            #expect(config.buffer.maxBytes == 512 << 20)
            #expect(config.mqtt.subscriptions.map(\.format) == [.json, .senml])
            #expect(config.mqtt.subscriptions[1].topic.device(in: "b/dev-7/x") == "dev-7")
            #expect(config.filters[0].range == RangeSpec(min: 0, max: 99.5))
            #expect(config.uplink.replay == .liveFirst)
        }
    }

    @Test("lists of mappings in the compact style (items at their key's indent) load too")
    func compactSequences() async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("c.yaml", """
                gateway: gw-1
                mqtt:
                  subscriptions:
                  - topic: a/{device}
                    format: senml
                  # a comment between items
                  - topic: b/{device}
                    format: line
                    precision: ms
                  url: mqtt://127.0.0.1:1999
                filters:
                - match: "*/temp"
                  range: {min: 1, max: 2}
                - match: hum
                  dedup: 10m
                metrics:
                  listen: off
                """)
            let config = try EdgeConfiguration.load(file: file, environment: [:])
            #expect(config.mqtt.subscriptions.map(\.topic.pattern) == ["a/{device}", "b/{device}"])
            #expect(config.mqtt.subscriptions.map(\.format) == [.senml, .line])
            #expect(config.mqtt.subscriptions[1].precision == .milliseconds)
            #expect(config.mqtt.url == "mqtt://127.0.0.1:1999")
            #expect(config.filters.map(\.match) == ["*/temp", "hum"])
            #expect(config.filters[1].dedupWindowMs == 600_000)
            #expect(config.metrics.listen == nil)
        }
    }

    @Test("issue 6's keys are read: ts_unit, precision, the clock policy, every filter stage, dead_letters.max_rows")
    func issueSixKeys() async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("six.yaml", """
                gateway: gw-1
                mqtt:
                  subscriptions:
                    - topic: s/{device}
                      format: json
                      ts_unit: s
                    - topic: u/{device}
                      ts_unit: us
                    - topic: l/{device}
                      format: line
                      precision: ms
                    - topic: p/{device}
                      format: senml
                max_clock_skew: 90s
                on_bad_timestamp: receive-time
                filters:
                  - match: "*/temp"
                    deadband:
                      percent: 5
                      heartbeat: 10m
                  - match: "*/rpm"
                    rate_limit: 2.5
                  - match: "*/power"
                    downsample:
                      bucket: 30s
                      aggregate: last
                  - match: hum
                    dedup: 2s
                    deadband: {abs: 0.5}
                    downsample: {bucket: 1m}
                dead_letters:
                  max_rows: 250
                """)
            let config = try EdgeConfiguration.load(file: file, environment: [:])
            let subs = config.mqtt.subscriptions
            #expect(subs.map(\.format) == [.json, .json, .line, .senml])
            #expect(subs.map(\.tsUnit) == [.seconds, .microseconds, .milliseconds, .milliseconds])
            #expect(subs.map(\.precision) == [.nanoseconds, .nanoseconds, .milliseconds, .nanoseconds])
            #expect(config.clock.maxClockSkew == .seconds(90))
            #expect(config.clock.onBadTimestamp == .receiveTime)
            #expect(config.filters == [
                FilterRule(match: "*/temp", deadband: DeadbandSpec(percent: 5, heartbeatMs: 600_000)),
                FilterRule(match: "*/rpm", rateLimitPerSecond: 2.5),
                FilterRule(match: "*/power", downsample: DownsampleSpec(bucketMs: 30_000, aggregate: .last)),
                FilterRule(match: "hum", dedupWindowMs: 2000, deadband: DeadbandSpec(abs: 0.5),
                           downsample: DownsampleSpec(bucketMs: 60_000, aggregate: .mean)),
            ])
            #expect(config.deadLetters.maxRows == 250)

            // And the defaults when none of them is given.
            let plain = try EdgeConfiguration.load(file: try dir.write("plain.yaml", "gateway: gw-1\n"), environment: [:])
            #expect(plain.mqtt.subscriptions.map(\.tsUnit) == [.milliseconds])
            #expect(plain.clock.maxClockSkew == .seconds(300))
            #expect(plain.clock.onBadTimestamp == .reject)
            #expect(plain.filters.isEmpty)
            #expect(plain.deadLetters.maxRows == 10_000)
        }
    }

    @Test("a bad config names the key and the problem", arguments: [
        ("gateway: gw-1\nbuffer:\n  flush_interval: soon\n", "buffer.flush_interval", "'soon' is not a duration"),
        ("gateway: gw-1\nbufer:\n  path: x\n", "bufer.path", "unknown key"),
        ("buffer:\n  path: x\n", "gateway", "is required"),
        ("gateway: gw-1\nmqtt:\n  url: http://broker\n", "mqtt.url", "is not an MQTT URL"),
        ("gateway: gw-1\nmqtt:\n  subscriptions:\n    - topic: a/{dev}\n", "mqtt.subscriptions.0.topic", "unknown placeholder '{dev}'"),
        ("gateway: gw-1\nmqtt:\n  subscriptions:\n    - topic: a/{device}\n      format: xml\n", "mqtt.subscriptions.0.format", "'xml' is not one of json, senml, line"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/t\"\n    range: {min: 5, max: 1}\n", "filters.0", "range.min 5.0 is above range.max 1.0"),
        ("gateway: gw-1\nuplink:\n  replay: newest\n", "uplink.replay", "'newest' is not one of"),
        ("gateway: gw-1\nbuffer:\n  max_bytes: lots\n", "buffer.max_bytes", "'lots' is not a size"),
        ("gateway: bad gateway\n", "gateway", "gateway contains ' '"),
        // Issue 6's keys.
        ("gateway: gw-1\nmqtt:\n  subscriptions:\n    - topic: a/{device}\n      ts_unit: ms2\n", "mqtt.subscriptions.0.ts_unit", "'ms2' is not one of s, ms, us, ns"),
        ("gateway: gw-1\nmqtt:\n  subscriptions:\n    - topic: a/{device}\n      format: line\n      precision: sec\n", "mqtt.subscriptions.0.precision", "'sec' is not one of s, ms, us, ns"),
        ("gateway: gw-1\nmax_clock_skew: a while\n", "max_clock_skew", "'a while' is not a duration"),
        ("gateway: gw-1\non_bad_timestamp: replace\n", "on_bad_timestamp", "'replace' is not one of reject, receive-time"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    downsample:\n      bucket: 10s\n      aggregate: median\n", "filters.0.downsample.aggregate", "'median' is not one of mean, min, max, last"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    downsample:\n      aggregate: max\n", "filters.0.downsample.bucket", "is required with downsample.aggregate"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    downsample:\n      bucket: soon\n", "filters.0.downsample.bucket", "'soon' is not a duration"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    downsample:\n      bucket: 0ms\n", "filters.0", "downsample bucket must be between 1ms and 365d"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    deadband:\n      percent: lots\n", "filters.0.deadband.percent", "'lots' is not a number"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    deadband:\n      abs: 1\n      heartbeat: often\n", "filters.0.deadband.heartbeat", "'often' is not a duration"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    deadband:\n      abs: 1\n      percent: 5\n", "filters.0", "deadband takes abs or percent, not both"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    deadband:\n      heartbeat: 1m\n", "filters.0", "deadband needs abs or percent"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    rate_limit: fast\n", "filters.0.rate_limit", "'fast' is not a number"),
        ("gateway: gw-1\nfilters:\n  - match: \"*/p\"\n    rate_limit: 0\n", "filters.0", "rate_limit must be a number of readings per second above 0"),
        ("gateway: gw-1\ndead_letters:\n  max_rows: 0\n", "dead_letters.max_rows", "must be at least 1"),
        ("gateway: gw-1\ndead_letters:\n  max_rows: many\n", "dead_letters.max_rows", "'many' is not a whole number"),
        // Issue 12's key.
        ("gateway: gw-1\nliveness:\n  stall_after: 500ms\n", "liveness.stall_after", "must be at least 1s"),
        ("gateway: gw-1\nliveness:\n  stall_after: never\n", "liveness.stall_after", "'never' is not a duration"),
        // Issue 14's keys.
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  ca_file: /nonexistent/ca.pem\n", "uplink.ca_file", "/nonexistent/ca.pem does not exist"),
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  ca_file: /etc\n", "uplink.ca_file", "is not a readable file"),
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  ca_file: /etc/hostname\n", "uplink.ca_file", "is not a PEM certificate file"),
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  client_cert_file: /etc/hostname\n", "uplink.client_key_file", "mutual TLS needs both"),
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  client_key_file: /etc/hostname\n", "uplink.client_cert_file", "mutual TLS needs both"),
        ("gateway: gw-1\nuplink:\n  url: https://cloud:8443\n  client_cert_file: /nonexistent/c.pem\n  client_key_file: /nonexistent/c.key\n", "uplink.client_cert_file", "does not exist"),
    ])
    func badConfigNamesKey(yaml: String, key: String, problem: String) async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("bad.yaml", yaml)
            do {
                _ = try EdgeConfiguration.load(file: file, environment: [:])
                Issue.record("accepted a bad config: \(yaml)")
            } catch let error as WeirError {
                #expect(error.code == .badConfig)
                #expect(error.message.contains("config key '\(key)'"), "\(error.message)")
                #expect(error.message.contains(problem), "\(error.message)")
            }
        }
    }

    @Test("a bad value names the file's line that holds it, or the environment variable that set it")
    func badValuesNameTheirLine() async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("lines.yaml", """
                gateway: gw-1
                # the second filter is broken
                filters:
                  - match: "*/temp"
                    range: {min: 0, max: 10}
                  - match: "*/hum"
                    deadband:
                      heartbeat: often
                bufer:
                  path: x
                """)
            func message(_ environment: [String: String] = [:], _ text: String? = nil) -> String {
                do {
                    let path = try text.map { try dir.write("other.yaml", $0) } ?? file
                    _ = try EdgeConfiguration.load(file: path, environment: environment)
                    return "accepted"
                } catch {
                    return "\(error)"
                }
            }
            // The unknown key is checked first, then each value.
            #expect(message().contains("config key 'bufer.path' (\(file) line 10): unknown key"), "\(message())")
            let fixed = "gateway: gw-1\nfilters:\n  - match: \"*/hum\"\n    deadband:\n      heartbeat: often\n"
            #expect(message([:], fixed).contains("config key 'filters.0.deadband.heartbeat' (\(dir.file("other.yaml")) line 5): 'often' is not a duration"),
                    "\(message([:], fixed))")
            // A required key missing from a list item points at the item.
            #expect(message([:], "gateway: gw-1\nmqtt:\n  subscriptions:\n    - format: json\n").contains("config key 'mqtt.subscriptions.0.topic' (\(dir.file("other.yaml")) line 4): is required"))
            // The environment overrides the file, and the error says so.
            #expect(message(["WEIR_EDGE_BUFFER_FLUSH_INTERVAL": "soon"], "gateway: gw-1\nbuffer:\n  flush_interval: 1s\n")
                .contains("config key 'buffer.flush_interval' (from WEIR_EDGE_BUFFER_FLUSH_INTERVAL): 'soon' is not a duration"))
            // Not valid YAML: Yams' line and column.
            #expect(message([:], "gateway: gw-1\nfilters: [\n").contains("is not valid YAML"))
        }
    }

    @Test("weir-edge run exits non-zero on a bad config before starting anything")
    func runRefusesBadConfig() async throws {
        try await withTemporaryDirectory { dir in
            let file = try dir.write("bad.yaml", "gateway: gw-1\nbuffer:\n  path: \(dir.file("edge.db"))\n  flush_interval: 0ms\n")
            let result = try await EdgeProcess.runCommand(["run", "--config", file], in: dir.path)
            #expect(result.status == 1)
            #expect(result.stderr.contains("buffer.flush_interval"))
            #expect(!FileManager.default.fileExists(atPath: dir.file("edge.db")), "nothing may start on a bad config")
        }
    }

    @Test("topic patterns: the {device} level and MQTT matching")
    func topicPatterns() {
        let p = TopicPattern("site/+/{device}/#")
        #expect(p.subscription == "site/+/+/#")
        #expect(p.device(in: "site/a/dev1/x/y") == "dev1")
        #expect(p.matches("site/a/dev1/x"))
        #expect(!p.matches("other/a/dev1"))
        #expect(TopicPattern("a/{device}/{device}").problem != nil)
        #expect(TopicPattern("a/#/b").problem != nil)
        #expect(TopicPattern("devices/{device}/telemetry").problem == nil)
    }
}
