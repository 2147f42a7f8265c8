public import FlowProtocol

extension JSONValue {
    /// This value with `patch` applied as a JSON Merge Patch (RFC 7386): objects merge member by
    /// member, `null` removes a member, anything else replaces.
    public func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        return .object((self.objectValue ?? [:]).mergePatched(with: patchObject))
    }
}

extension JSONObject {
    /// This object with `patch` applied as a JSON Merge Patch (RFC 7386).
    public func mergePatched(with patch: JSONObject) -> JSONObject {
        var target = self
        for (key, value) in patch {
            if value == .null {
                target.removeValue(forKey: key)
            } else {
                target[key] = (target[key] ?? .null).mergePatched(with: value)
            }
        }
        return target
    }
}
