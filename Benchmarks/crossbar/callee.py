#!/usr/bin/env python3
"""The Crossbar.io peer's callee: registers `bench.echo`, which returns its first argument.

    callee.py ws://127.0.0.1:PORT/ws REALM

Prints "ready" once the procedure is registered. Started and stopped by flowgate-bench.
"""
import sys

from autobahn.asyncio.wamp import ApplicationRunner, ApplicationSession


class Callee(ApplicationSession):
    async def onJoin(self, details):
        await self.register(lambda payload=None: payload, "bench.echo")
        print("ready", flush=True)


if __name__ == "__main__":
    ApplicationRunner(sys.argv[1], sys.argv[2]).run(Callee)
