#!/usr/bin/env python3
"""A provider for flowgate-bench (picows): registers scheduler/queue and answers every call at
once with the same job object, doing as little per message as a provider can (the call id is
sliced out of the frame, the answer is bytes with the id spliced in).

    provider_echo.py WS_URL AUTHORIZATION [--concurrency 4096]

Runs until killed; traffic goes only to the URL given, which the caller keeps on loopback.
"""
import argparse
import asyncio
import json

from picows import WSListener, WSMsgType, ws_connect

JOB = json.dumps({"id": "nightly-backup", "name": "Nightly backup", "state": "queued"}, separators=(",", ":")).encode()


class Provider(WSListener):
    def __init__(self, concurrency):
        self.concurrency = concurrency
        self.registered = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport):
        registration = {"method": "CREATE", "namespace": "system/providers", "requestid": "register",
                        "data": {"namespace": "scheduler/queue", "methods": ["LIST", "OPEN", "RUN"], "concurrency": self.concurrency}}
        transport.send(WSMsgType.TEXT, json.dumps(registration).encode())

    def on_ws_frame(self, transport, frame):
        if frame.msg_type != WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if payload.startswith(b'{"call":"'):
            end = payload.index(b'"', 9)
            transport.send(WSMsgType.TEXT, payload[:end + 1] + b',"success":true,"data":' + JOB + b"}")
        elif not self.registered.done() and b'"register"' in payload:
            self.registered.set_result(json.loads(payload).get("success"))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("authorization")
    parser.add_argument("--concurrency", type=int, default=4096)
    args = parser.parse_args()
    transport, listener = await ws_connect(lambda: Provider(args.concurrency), args.url, extra_headers={"Authorization": args.authorization})
    if not await asyncio.wait_for(listener.registered, 10):
        raise SystemExit("registration refused")
    await transport.wait_disconnected()


asyncio.run(main())
