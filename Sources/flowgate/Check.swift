import ArgumentParser
import FlowCore
import FlowServer
import Foundation

/// `flowgate check`: validates endpoint definitions and schemas without starting.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the endpoint definitions and JSON Schemas; exit non-zero on any problem."
    )

    @Option(help: "Endpoint definitions folder (default ./Endpoints, or FLOWGATE_ENDPOINTS).") var endpoints: String?
    @Option(help: "JSON Schema folder (default ./Schemas, or FLOWGATE_SCHEMAS).") var schemas: String?

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let endpoints = self.endpoints ?? environment["FLOWGATE_ENDPOINTS"] ?? GatewayConfiguration().endpointsDirectory
        let schemas = self.schemas ?? environment["FLOWGATE_SCHEMAS"] ?? GatewayConfiguration().schemasDirectory
        do {
            let catalog = try EndpointCatalog.load(endpoints: endpoints, schemas: schemas)
            print("ok: \(catalog.collections.count + catalog.providerReservations.count + catalog.upstreams.count) endpoint definition(s) (\(catalog.collections.count) collection(s), \(catalog.providerReservations.count) provider namespace(s), \(catalog.upstreams.count) upstream(s)), \(catalog.schemaCount) schema(s)")
            // Every definition counted above, with its kind.
            let listed = catalog.collections.map { ($0, "collection") } + catalog.providerReservations.map { ($0, "provider") }
                + catalog.upstreams.map { ($0, "upstream") }
            for (definition, kind) in listed {
                print("  \(definition.definition.namespace)  \(kind)  \(definition.file)")
            }
        } catch {
            for problem in error.problems { print(problem) }
            print("\(error.problems.count) problem(s)")
            throw ExitCode(1)
        }
    }
}
