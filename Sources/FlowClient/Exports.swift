// A subsystem writes `import FlowClient` only: the envelope types it handles (`Namespace`,
// `Method`, `JSONValue`, `Response`, `FlowError`) come with it.
@_exported public import FlowProtocol
