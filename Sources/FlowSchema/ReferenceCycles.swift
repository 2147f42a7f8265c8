/// Finds `$ref` cycles that never descend into the instance (SPEC §11): `{"$ref": "#"}` at the
/// root, or two definitions whose `allOf`s refer to each other. Evaluating such a schema would
/// recurse without end, so it is refused where it enters, with the `$ref` that closes the cycle named.
///
/// The graph has an edge for every keyword that applies a subschema to the *same* instance
/// location (`$ref`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas`);
/// keywords that step into a property or an item end a path. Depth-first, with an explicit stack.
struct ReferenceCycles {
    let nodes: [SchemaNode]
    let pointers: [[String]]

    private struct Edge {
        let target: Int
        let isReference: Bool
    }

    /// The longest chain of in-place subschemas accepted: evaluation recurses along it.
    static let maxChain = 256

    func check() throws(SchemaError) {
        let edges = self.nodes.map(Self.inPlaceEdges)
        // 0: not seen, 1: on the current path, 2: done.
        var color = [UInt8](repeating: 0, count: self.nodes.count)
        // The longest in-place chain from each node, known once the node is done (its targets are).
        var chain = [Int](repeating: 1, count: self.nodes.count)
        for root in self.nodes.indices where color[root] == 0 {
            var path: [(node: Int, next: Int)] = [(root, 0)]
            color[root] = 1
            while let (node, next) = path.last {
                guard next < edges[node].count else {
                    color[node] = 2
                    chain[node] = 1 + (edges[node].map { chain[$0.target] }.max() ?? 0)
                    if chain[node] > Self.maxChain {
                        throw SchemaError(
                            kind: .tooComplex, keyword: "$ref", location: SchemaCompiler.pointerText(self.pointers[node]),
                            message: "starts a chain of more than \(Self.maxChain) subschemas applied to the same value"
                        )
                    }
                    path.removeLast()
                    continue
                }
                path[path.count - 1].next += 1
                let target = edges[node][next].target
                switch color[target] {
                case 0:
                    color[target] = 1
                    path.append((target, 0))
                case 1:
                    throw self.cycleError(path: path, edges: edges, closingAt: target)
                default:
                    break
                }
            }
        }
    }

    /// The error naming the first `$ref` on the cycle from `target` along `path` back to it.
    private func cycleError(path: [(node: Int, next: Int)], edges: [[Edge]], closingAt target: Int) -> SchemaError {
        let start = path.firstIndex { $0.node == target } ?? 0
        let cycle = path[start...]
        // Every cycle has a `$ref` on it: the other keywords only point deeper into the document.
        let reference = cycle.first { edges[$0.node][$0.next - 1].isReference } ?? cycle[cycle.startIndex]
        return SchemaError(
            kind: .referenceCycle, keyword: "$ref", location: SchemaCompiler.pointerText(self.pointers[reference.node] + ["$ref"]),
            message: "forms a cycle of references that never steps into the data, so checking it would never end"
        )
    }

    private static func inPlaceEdges(_ node: SchemaNode) -> [Edge] {
        var edges: [Edge] = []
        for keyword in node.keywords {
            switch keyword {
            case .reference(let index): edges.append(Edge(target: index, isReference: true))
            case .allOf(let indices), .anyOf(let indices), .oneOf(let indices):
                edges += indices.map { Edge(target: $0, isReference: false) }
            case .not(let index): edges.append(Edge(target: index, isReference: false))
            case .conditional(let condition, let then, let otherwise):
                edges += [condition, then, otherwise].compactMap { $0 }.map { Edge(target: $0, isReference: false) }
            case .dependentSchemas(let pairs):
                edges += pairs.map { Edge(target: $0.1, isReference: false) }
            default:
                break
            }
        }
        return edges
    }
}
