// `JSONObject` is an `OrderedDictionary`; re-exported so users of FlowProtocol can use its members.
@_exported public import OrderedCollections
