import Testing
@testable import WeirEdge

/// The uplink's decisions alone: events in, actions and the next state out, with no
/// socket, buffer file or clock (the edge end-to-end tests cover the I/O around it).
@Suite("uplink state machine")
struct UplinkStateMachineTests {
    static let a = "http://a:8080"
    static let b = "http://b:8080"
    static let c = "http://c:8080"
    static let base: Duration = .milliseconds(200)

    /// Chunks `seqs`, 10 readings each; the machine never looks inside.
    static func batch(_ seqs: ClosedRange<Int64>) -> UplinkBatch {
        UplinkBatch(gateway: "gw", parts: seqs.map { UplinkBatch.Part(seq: $0, count: 10) }, chunkBodies: seqs.map { _ in [] }, drops: [])
    }

    static func machine(_ urls: [String] = [a], cap: Duration = .seconds(30)) -> UplinkStateMachine {
        UplinkStateMachine(urls: urls, backoff: Backoff(base: base, cap: cap), idleWait: .milliseconds(100))
    }

    /// A machine just started, with `batch` on the wire to the first URL.
    static func sending(_ batch: UplinkBatch, urls: [String] = [a]) -> UplinkStateMachine {
        var m = machine(urls)
        #expect(m.start() == .prepareBatch(outboxFirst: true))
        #expect(m.batchPrepared(batch) == .send(batch, to: urls[0]))
        return m
    }

    // MARK: Sending

    @Test func nothingWaitingSleepsAndLooksAgain() {
        var m = Self.machine()
        #expect(m.start() == .prepareBatch(outboxFirst: true))
        #expect(m.batchPrepared(nil) == .waitForChunks(.milliseconds(100)))
        #expect(m.waited() == .prepareBatch(outboxFirst: false), "the outbox is read once, at start")
        #expect(m.status == .idle)
    }

    @Test func aCommitDeletesTheBatchAndTheNextGoesAtOnce() {
        let first = Self.batch(1...3), second = Self.batch(4...4)
        var m = Self.sending(first)
        #expect(m.responseReceived(.committed) == .forward(first, leaving: .idle))
        #expect(m.status == .idle, "ok only once the buffer has recorded the forward")
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.status == .ok)
        #expect(m.batchPrepared(second) == .send(second, to: Self.a))
        #expect(m.responseReceived(.committed) == .forward(second, leaving: nil), "already ok: nothing to record")
    }

    @Test func aCommitAfterAnEpisodeEndsIt() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.unreachable(reason: "refused")) == .backOff(.retrying(reason: "refused"), .backoff(upTo: Self.base), report: true))
        #expect(m.status == .retrying)
        #expect(m.waited() == .send(batch, to: Self.a))
        #expect(m.responseReceived(.committed) == .forward(batch, leaving: .retrying))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.status == .ok)
    }

    // MARK: 413

    @Test func tooLargeSplitsAndSendsThePiecesInOrder() {
        let batch = Self.batch(1...4), front = Self.batch(1...2), back = Self.batch(3...4)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.tooLarge) == .split(batch))
        #expect(m.splitFinished([front, back]) == .send(front, to: Self.a))
        #expect(m.responseReceived(.committed) == .send(back, to: Self.a))
        #expect(m.responseReceived(.committed) == .forward(batch, leaving: .idle), "all pieces committed: the whole batch is forwarded")
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
    }

    @Test func aLaterPieceRefusedForwardsTheCommittedOnesAndRejectsOnlyIt() {
        let batch = Self.batch(1...4), front = Self.batch(1...2), back = Self.batch(3...4)
        let q1 = Self.batch(1...1), q2 = Self.batch(2...2)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.tooLarge) == .split(batch))
        #expect(m.splitFinished([front, back]) == .send(front, to: Self.a))
        #expect(m.responseReceived(.tooLarge) == .split(front), "a piece is split again")
        #expect(m.splitFinished([q1, q2]) == .send(q1, to: Self.a))
        #expect(m.responseReceived(.committed) == .send(q2, to: Self.a))
        #expect(m.responseReceived(.committed) == .send(back, to: Self.a))
        #expect(m.responseReceived(.rejected(status: 400, body: "bad row")) == .forwardPieces([front], of: batch),
                "a piece whose own split went through is forwarded whole")
        #expect(m.recorded() == .reject(back, .refused(status: 400, body: "bad row")))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
    }

    @Test func aPieceFailingAfterCommittedOnesKeepsTheRestToBeReadAfresh() {
        let batch = Self.batch(1...4), front = Self.batch(1...2), back = Self.batch(3...4)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.tooLarge) == .split(batch))
        #expect(m.splitFinished([front, back]) == .send(front, to: Self.a))
        #expect(m.responseReceived(.committed) == .send(back, to: Self.a))
        #expect(m.responseReceived(.unauthorized(status: 401, body: "no")) == .forwardPieces([front], of: batch))
        #expect(m.recorded() == .backOff(.unauthorized(status: 401, body: "no"), .backoff(upTo: Self.base), report: true))
        #expect(m.waited() == .prepareBatch(outboxFirst: false), "the buffer no longer holds that batch: read what is left")
    }

    @Test func aSingleReadingOverTheCapIsRejected() {
        let batch = Self.batch(7...7)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.tooLarge) == .split(batch))
        #expect(m.splitFinished(nil) == .reject(batch, .tooLarge))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.status == .idle, "a rejection is not a link state")
    }

    @Test func aSplitThatFailsBacksOffAndSendsTheBatchAgain() {
        let batch = Self.batch(1...2)
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        #expect(m.responseReceived(.tooLarge) == .split(batch))
        #expect(m.splitFailed("splitting batch x failed: damaged") ==
                .backOff(.retrying(reason: "splitting batch x failed: damaged"), .backoff(upTo: Self.base), report: true),
                "not the URL's fault: no failover")
        #expect(m.waited() == .send(batch, to: Self.a))
    }

    // MARK: Refusals that keep every chunk

    @Test(arguments: [401, 403])
    func unauthorizedKeepsEverythingAndReportsOnce(status: Int) {
        let batch = Self.batch(1...2)
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        let problem = UplinkStateMachine.Problem.unauthorized(status: status, body: "bad token")
        #expect(m.responseReceived(.unauthorized(status: status, body: "bad token")) == .backOff(problem, .backoff(upTo: Self.base), report: true))
        #expect(m.status == .unauthorized)
        #expect(m.waited() == .send(batch, to: Self.a), "the token is the same for every replica: no failover")
        #expect(m.responseReceived(.unauthorized(status: status, body: "bad token")) == .backOff(problem, .backoff(upTo: Self.base * 2), report: false))
    }

    @Test func aCertificateProblemKeepsEverythingAndReportsOnce() {
        let batch = Self.batch(1...2)
        let problem = UplinkTLSProblem(.untrustedCertificate, "the cloud's certificate did not verify")
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        #expect(m.responseReceived(.certificateProblem(problem)) == .backOff(.certificateProblem(problem), .backoff(upTo: Self.base), report: true))
        #expect(m.status == .certificateProblem)
        #expect(m.waited() == .send(batch, to: Self.a))
        #expect(m.responseReceived(.certificateProblem(problem)) == .backOff(.certificateProblem(problem), .backoff(upTo: Self.base * 2), report: false))
        #expect(problem.message.hasPrefix("uplink certificate problem: "))
    }

    @Test(arguments: [404, 405])
    func anEndpointNotFoundNamesTheURL(status: Int) {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.endpointNotFound(status: status, body: "")) ==
                .backOff(.endpointNotFound(status: status, body: "", url: Self.a), .backoff(upTo: Self.base), report: true))
        #expect(m.status == .endpointNotFound)
        #expect(m.waited() == .send(batch, to: Self.a))
    }

    @Test func aNewKindOfProblemIsReportedAgain() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch)
        _ = m.responseReceived(.unauthorized(status: 401, body: ""))
        _ = m.waited()
        #expect(m.responseReceived(.endpointNotFound(status: 404, body: "")) ==
                .backOff(.endpointNotFound(status: 404, body: "", url: Self.a), .backoff(upTo: Self.base * 2), report: true))
    }

    // MARK: Refused for good

    @Test(arguments: [400, 409, 422])
    func anotherClientErrorRejectsTheBatchAndGoesOn(status: Int) {
        let batch = Self.batch(1...3)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.rejected(status: status, body: "no")) == .reject(batch, .refused(status: status, body: "no")))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.status == .idle)
    }

    // MARK: Retrying, failover

    @Test func slowDownWaitsRetryAfterOnTheSameURL() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        #expect(m.responseReceived(.slowDown(status: 429, retryAfter: .seconds(2), body: "busy")) ==
                .backOff(.retrying(reason: "HTTP 429 from \(Self.a): busy"), .retryAfter(.seconds(2)), report: true))
        #expect(m.waited() == .send(batch, to: Self.a), "a replica of the same cloud shares its limits")
        #expect(m.responseReceived(.slowDown(status: 429, retryAfter: nil, body: "")) ==
                .backOff(.retrying(reason: "HTTP 429 from \(Self.a): "), .backoff(upTo: Self.base), report: false),
                "no Retry-After: the backoff, which the wait before did not advance")
    }

    @Test func connectionErrorsAnd5xxMoveToTheNextURLAndBackOffOnlyWhenAllFailed() {
        let batch = Self.batch(1...2)
        var m = Self.sending(batch, urls: [Self.a, Self.b, Self.c])
        #expect(m.responseReceived(.unreachable(reason: "refused")) == .failOver(to: Self.b, reason: "refused"))
        #expect(m.status == .failingOver)
        #expect(m.recorded() == .send(batch, to: Self.b), "the same batch, at once")
        #expect(m.responseReceived(.serverError(status: 502, retryAfter: nil, body: "gw")) == .failOver(to: Self.c, reason: "HTTP 502 from \(Self.b): gw"))
        #expect(m.recorded() == .send(batch, to: Self.c))
        #expect(m.responseReceived(.unreachable(reason: "reset")) == .backOff(.retrying(reason: "reset"), .backoff(upTo: Self.base), report: true))
        #expect(m.status == .retrying)
        #expect(m.waited() == .send(batch, to: Self.a), "a new round starts where the last began")
        #expect(m.responseReceived(.unreachable(reason: "refused")) == .failOver(to: Self.b, reason: "refused"))
    }

    @Test func aTimeoutIsNoAnswerAndFailsOver() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        let reason = "POST \(Self.a)/v1/batches failed: deadlineExceeded"
        #expect(m.responseReceived(.unreachable(reason: reason)) == .failOver(to: Self.b, reason: reason))
        #expect(m.recorded() == .send(batch, to: Self.b))
    }

    @Test func a503WaitsRetryAfterOnceEveryURLFailed() {
        let batch = Self.batch(1...1)
        var one = Self.sending(batch)
        #expect(one.responseReceived(.serverError(status: 503, retryAfter: .seconds(5), body: "")) ==
                .backOff(.retrying(reason: "HTTP 503 from \(Self.a): "), .retryAfter(.seconds(5)), report: true))
        var two = Self.sending(batch, urls: [Self.a, Self.b])
        #expect(two.responseReceived(.serverError(status: 503, retryAfter: .seconds(5), body: "")) ==
                .failOver(to: Self.b, reason: "HTTP 503 from \(Self.a): "))
    }

    @Test func requestTimeoutUnexpectedStatusAndEncodingFailuresStayOnTheURL() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch, urls: [Self.a, Self.b])
        #expect(m.responseReceived(.requestTimeout(body: "slow")) ==
                .backOff(.retrying(reason: "HTTP 408 from \(Self.a): slow"), .backoff(upTo: Self.base), report: true))
        #expect(m.waited() == .send(batch, to: Self.a))
        #expect(m.responseReceived(.unexpected(status: 302)) ==
                .backOff(.retrying(reason: "unexpected HTTP 302 from \(Self.a)"), .backoff(upTo: Self.base * 2), report: false))
        #expect(m.waited() == .send(batch, to: Self.a))
        #expect(m.responseReceived(.notSent(reason: "encoding failed")) ==
                .backOff(.retrying(reason: "encoding failed"), .backoff(upTo: Self.base * 4), report: false))
    }

    @Test func aSuccessStartsAFreshRoundOnTheURLThatAnswered() {
        let first = Self.batch(1...1), second = Self.batch(2...2)
        var m = Self.sending(first, urls: [Self.a, Self.b])
        #expect(m.responseReceived(.unreachable(reason: "down")) == .failOver(to: Self.b, reason: "down"))
        #expect(m.recorded() == .send(first, to: Self.b))
        #expect(m.responseReceived(.committed) == .forward(first, leaving: .failingOver))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.batchPrepared(second) == .send(second, to: Self.b), "stays on the replica that works")
        #expect(m.responseReceived(.unreachable(reason: "down")) == .failOver(to: Self.a, reason: "down"),
                "the failures before the success do not count")
    }

    @Test func theBackoffCeilingDoublesToTheCapAndASuccessResetsIt() {
        let batch = Self.batch(1...1)
        var m = Self.machine(cap: .seconds(1))
        _ = m.start()
        _ = m.batchPrepared(batch)
        var ceilings: [Duration] = []
        for _ in 0..<5 {
            if case .backOff(_, .backoff(let ceiling), _) = m.responseReceived(.unreachable(reason: "down")) { ceilings.append(ceiling) }
            #expect(m.waited() == .send(batch, to: Self.a))
        }
        #expect(ceilings == [.milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(m.responseReceived(.committed) == .forward(batch, leaving: .retrying))
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.batchPrepared(batch) == .send(batch, to: Self.a))
        #expect(m.responseReceived(.unreachable(reason: "down")) == .backOff(.retrying(reason: "down"), .backoff(upTo: Self.base), report: true))
    }

    @Test func jitterStaysUnderTheCeiling() {
        for _ in 0..<100 {
            let wait = Backoff.jittered(upTo: .milliseconds(400))
            #expect(wait >= .zero && wait <= .milliseconds(400))
        }
    }

    // MARK: Shutdown

    @Test func shutdownMidSendStopsAndIgnoresTheLateAnswer() {
        let batch = Self.batch(1...1)
        var m = Self.sending(batch)
        #expect(m.shutdown() == .stop)
        #expect(m.responseReceived(.unreachable(reason: "cancelled")) == .stop)
        #expect(m.status == .idle, "a cut-short POST is not reported as a failure")
    }

    @Test func shutdownWhileBackingOffOrSplittingStops() {
        let batch = Self.batch(1...2)
        var waiting = Self.sending(batch)
        _ = waiting.responseReceived(.unreachable(reason: "down"))
        #expect(waiting.shutdown() == .stop)
        #expect(waiting.waited() == .stop)
        var splitting = Self.sending(batch)
        #expect(splitting.responseReceived(.tooLarge) == .split(batch))
        #expect(splitting.shutdown() == .stop)
        #expect(splitting.splitFinished([Self.batch(1...1), Self.batch(2...2)]) == .stop)
    }

    // MARK: The buffer file failing

    @Test func aFailedReadBacksOffAndReadsTheOutboxAgain() {
        var m = Self.machine()
        #expect(m.start() == .prepareBatch(outboxFirst: true))
        #expect(m.bufferFailed("disk I/O error") == .backOff(.buffer("disk I/O error"), .backoff(upTo: Self.base), report: true))
        #expect(m.waited() == .prepareBatch(outboxFirst: true), "the outbox was not read yet")
        #expect(m.bufferFailed("disk I/O error") == .backOff(.buffer("disk I/O error"), .backoff(upTo: Self.base * 2), report: true),
                "said every time")
        #expect(m.status == .idle, "the buffer's trouble is not a state of the link")
    }

    @Test func aForwardTheBufferCouldNotRecordIsSentAgain() {
        let batch = Self.batch(1...2)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.committed) == .forward(batch, leaving: .idle))
        #expect(m.bufferFailed("disk full") == .backOff(.buffer("disk full"), .backoff(upTo: Self.base), report: true))
        #expect(m.waited() == .send(batch, to: Self.a), "resending is safe: the cloud applies a batch once")
        #expect(m.responseReceived(.committed) == .forward(batch, leaving: .idle), "ok is still to be recorded")
        #expect(m.recorded() == .prepareBatch(outboxFirst: false))
        #expect(m.status == .ok)
    }

    @Test func aRejectionTheBufferCouldNotRecordIsSentAgain() {
        let batch = Self.batch(1...2)
        var m = Self.sending(batch)
        #expect(m.responseReceived(.rejected(status: 400, body: "")) == .reject(batch, .refused(status: 400, body: "")))
        #expect(m.bufferFailed("disk full") == .backOff(.buffer("disk full"), .backoff(upTo: Self.base), report: true))
        #expect(m.waited() == .send(batch, to: Self.a))
    }

    // MARK: Answers

    @Test(arguments: [
        (200, nil, UplinkResponse.committed),
        (204, nil, .committed),
        (401, nil, .unauthorized(status: 401, body: "b")),
        (403, nil, .unauthorized(status: 403, body: "b")),
        (404, nil, .endpointNotFound(status: 404, body: "b")),
        (405, nil, .endpointNotFound(status: 405, body: "b")),
        (413, nil, .tooLarge),
        (429, "3", .slowDown(status: 429, retryAfter: .seconds(3), body: "b")),
        (429, "soon", .slowDown(status: 429, retryAfter: nil, body: "b")),
        (503, "1.5", .serverError(status: 503, retryAfter: .milliseconds(1500), body: "b")),
        (503, "3600", .serverError(status: 503, retryAfter: .seconds(300), body: "b")),
        (500, "2", .serverError(status: 500, retryAfter: nil, body: "b")),
        (502, nil, .serverError(status: 502, retryAfter: nil, body: "b")),
        (408, nil, .requestTimeout(body: "b")),
        (400, nil, .rejected(status: 400, body: "b")),
        (422, nil, .rejected(status: 422, body: "b")),
        (302, nil, .unexpected(status: 302)),
    ] as [(Int, String?, UplinkResponse)])
    func anHTTPAnswerIsSortedByWhatTheEdgeDoes(status: Int, retryAfter: String?, expected: UplinkResponse) {
        #expect(UplinkResponse(status: status, retryAfter: retryAfter, body: "b") == expected)
    }

    @Test func theStateTextIsTheWordStatusShows() {
        #expect(UplinkState.allCases.map(\.rawValue) == ["idle", "ok", "failing over", "retrying", "uplink unauthorized",
                                                          "uplink certificate problem", "uplink endpoint not found", "error"])
        #expect(BrokerState.allCases.map(\.rawValue) == ["connected", "not connected", "stopped", "unknown"])
    }
}
