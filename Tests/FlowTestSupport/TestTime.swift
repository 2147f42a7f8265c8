import Foundation

/// Time bounds in tests that assert an answer came "in time" (SPEC: at once, within the timeout
/// plus a second). Under a sanitizer everything runs several times slower, so the bounds stretch
/// by `FLOWGATE_TEST_TIME_SCALE` (scripts/sanitize sets it); 1 otherwise.
public enum TestTime {
    public static let scale: Int = Int(ProcessInfo.processInfo.environment["FLOWGATE_TEST_TIME_SCALE"] ?? "") ?? 1

    /// `duration`, stretched by ``scale``.
    public static func bound(_ duration: Duration) -> Duration { duration * scale }
}
