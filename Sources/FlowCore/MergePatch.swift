public import FlowProtocol

extension JSONValue {
    /// This value with `patch` applied as a JSON Merge Patch (RFC 7386): objects merge member by
    /// member, `null` removes a member, anything else replaces.
    public func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        var target: JSONObject
        if case .object(let object) = self { target = object } else { target = [:] }
        for (key, value) in patchObject {
            if value == .null {
                target.removeValue(forKey: key)
            } else {
                target[key] = (target[key] ?? .null).mergePatched(with: value)
            }
        }
        return .object(target)
    }
}
