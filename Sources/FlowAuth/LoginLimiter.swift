/// Failed logins per key (a username or a client address) in a sliding window (SPEC §9.6, §11).
/// A value type with the time passed in, so it is tested without a clock.
struct LoginLimiter: Sendable {
    /// Failures allowed per key within `window`; one more and the key is limited.
    let limit: Int
    /// Seconds.
    let window: Double
    /// Keys kept at most; past that the oldest windows are dropped first.
    let capacity: Int
    private var failures: [String: [Double]] = [:]

    init(limit: Int, window: Double = 60, capacity: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// Whether any of `keys` has reached the limit at `now`.
    func isLimited(_ keys: [String], now: Double) -> Bool {
        keys.contains { key in (self.failures[key]?.count { $0 > now - self.window } ?? 0) >= self.limit }
    }

    /// Counts a failure for each of `keys`.
    mutating func recordFailure(_ keys: [String], now: Double) {
        if self.failures.count >= self.capacity { self.prune(now: now) }
        for key in keys {
            var times = self.failures[key] ?? []
            times.removeAll { $0 <= now - self.window }
            times.append(now)
            self.failures[key] = times
        }
    }

    /// How many keys are tracked (for tests).
    var trackedKeys: Int { self.failures.count }

    private mutating func prune(now: Double) {
        self.failures = self.failures.compactMapValues { times in
            let recent = times.filter { $0 > now - self.window }
            return recent.isEmpty ? nil : recent
        }
        // Still full (an attack from many keys): forget the half with the oldest last failure.
        if self.failures.count >= self.capacity {
            let keep = self.failures.sorted { ($0.value.last ?? 0) > ($1.value.last ?? 0) }.prefix(self.capacity / 2)
            self.failures = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
