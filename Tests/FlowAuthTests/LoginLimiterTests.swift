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
