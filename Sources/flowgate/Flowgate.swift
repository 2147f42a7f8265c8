import ArgumentParser

@main
struct Flowgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowgate",
        abstract: "A WebSocket RPC gateway: one daemon publishing endpoints over WebSocket and HTTP.",
        subcommands: [Serve.self, Check.self, User.self, Token.self, Backup.self, Restore.self]
    )
}
