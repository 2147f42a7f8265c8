@testable import FlowAuth
import Testing

struct LoginLimiterTests {
    @Test func limitsAKeyAfterTheAllowedFailuresAndForgetsThemAfterTheWindow() {
        var limiter = LoginLimiter(limit: 3, window: 60)
        for second in 0..<3 {
            #expect(!limiter.isLimited(["user:a"], now: Double(second)))
            limiter.recordFailure(["user:a", "address:1"], now: Double(second))
        }
        #expect(limiter.isLimited(["user:a"], now: 3))
        #expect(limiter.isLimited(["user:b", "address:1"], now: 3), "the address is limited for every user name")
        #expect(!limiter.isLimited(["user:b", "address:2"], now: 3))
        #expect(!limiter.isLimited(["user:a"], now: 60.5), "the first failure left the window")
        #expect(!limiter.isLimited(["user:a"], now: 200))
    }

    /// SPEC §11: an attempt counts while it is in flight, so concurrent guesses cannot all pass
    /// the check before the first of them is known to have failed.
    @Test func attemptsInFlightCountAgainstTheLimit() {
        var limiter = LoginLimiter(limit: 3, window: 60)
        let keys = ["user:a", "address:1"]
        var admitted = (0..<4).map { _ in limiter.admit(keys, now: 0) }
        #expect(admitted == [true, true, true, false], "a fourth attempt while three are in flight")
        var other = limiter.admit(["user:b", "address:1"], now: 0)
        #expect(!other, "the address is at its limit too")
        limiter.finish(keys, failed: false, now: 1)
        other = limiter.admit(keys, now: 1)
        #expect(other, "a good attempt frees its place")
        for _ in 0..<3 { limiter.finish(keys, failed: true, now: 1) }
        admitted = [limiter.admit(keys, now: 2), limiter.admit(keys, now: 62)]
        #expect(admitted == [false, true], "three failures in the window, then none")
    }

    @Test func staysWithinItsCapacityUnderFailuresFromManyKeys() {
        var limiter = LoginLimiter(limit: 3, window: 60, capacity: 100)
        for index in 0..<1000 { limiter.recordFailure(["address:\(index)"], now: Double(index) / 100) }
        #expect(limiter.trackedKeys <= 100)
        limiter.recordFailure(["user:x"], now: 20)
        limiter.recordFailure(["user:x"], now: 20)
        limiter.recordFailure(["user:x"], now: 20)
        #expect(limiter.isLimited(["user:x"], now: 20), "the newest keys are kept")
    }
}
