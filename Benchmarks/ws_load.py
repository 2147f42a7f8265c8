#!/usr/bin/env python3
"""WebSocket load generator for flowgate-bench (picows).

Keeps CONNECTIONS sockets with IN_FLIGHT frames each in flight for DURATION seconds: every
answer is immediately replaced by a new frame. Frames carry an integer "requestid" that the
server echoes (the raw echo server returns the frame itself), which is how latency is matched.
Prints one JSON object: messages/s, latency percentiles (ms), errors, and the client's CPU time.

    ws_load.py URL FRAME_TEMPLATE --connections 16 --in-flight 4 --duration 10

FRAME_TEMPLATE is the frame text with {rid} where the request id goes.
Traffic goes only to the URL given; the caller keeps it on loopback.

With --wamp REALM the sockets speak WAMP v2 (JSON) instead, for the Crossbar.io peer: each
opens a session in REALM (HELLO/WELCOME) before sending, FRAME_TEMPLATE is a CALL such as
'[48,{rid},{},"bench.echo",[...]]', and answers are matched by the RESULT's request id.
"""
import argparse
import asyncio
import json
import resource
import time

from picows import WSListener, WSMsgType, ws_connect


class Client(WSListener):
    def __init__(self, state, template, realm=None):
        self.state = state
        self.template = template
        self.sent = {}
        self.transport = None
        self.realm = realm
        self.ready = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport):
        self.transport = transport
        if self.realm:
            hello = [1, self.realm, {"roles": {"caller": {}}}]
            transport.send(WSMsgType.TEXT, json.dumps(hello).encode())
        else:
            self.ready.set_result(True)

    def request_id(self, payload):
        """The request id an answer carries, or None."""
        if self.realm:
            # RESULT [50, id, ...]; ERROR [8, 48, id, ...] counts as an error.
            parts = payload[1:40].split(b",", 3)
            if payload.startswith(b"[50,"):
                return int(parts[1])
            if payload.startswith(b"[8,48,"):
                self.state.errors += 1
                return int(parts[2])
            return None
        at = payload.find(b'"requestid":')
        if at < 0:
            return None
        end = at + 12
        while end < len(payload) and payload[end] in b"0123456789":
            end += 1
        return int(payload[at + 12:end])

    def send_one(self):
        state = self.state
        state.next_id += 1
        rid = state.next_id
        self.sent[rid] = time.perf_counter()
        self.transport.send(WSMsgType.TEXT, self.template.replace(b"{rid}", str(rid).encode()))

    def on_ws_frame(self, transport, frame):
        if frame.msg_type != WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if not self.ready.done():
            # WAMP: the session's WELCOME [2, ...]; anything else (ABORT) leaves it unready.
            if payload.startswith(b"[2,"):
                self.ready.set_result(True)
            return
        rid = self.request_id(payload)
        if rid is None:
            self.state.errors += 1
            return
        started = self.sent.pop(rid, None)
        if started is None:
            self.state.errors += 1
            return
        state = self.state
        if b'"success":false' in payload:
            state.errors += 1
        now = time.perf_counter()
        if state.measuring:
            state.count += 1
            state.latencies.append(now - started)
        if state.running:
            self.send_one()


class State:
    def __init__(self):
        self.next_id = 0
        self.count = 0
        self.errors = 0
        self.latencies = []
        self.measuring = False
        self.running = True


async def run(url, template, connections, in_flight, duration, warmup, realm=None):
    state = State()
    clients = []
    headers = {"Sec-WebSocket-Protocol": "wamp.2.json"} if realm else None
    # Several URLs (comma-separated): the connections go to them in turn (round-robin).
    urls = url.split(",")
    for index in range(connections):
        transport, client = await ws_connect(lambda: Client(state, template, realm), urls[index % len(urls)], extra_headers=headers)
        clients.append((transport, client))
    for _, client in clients:
        await asyncio.wait_for(client.ready, 10)
    for _, client in clients:
        for _ in range(in_flight):
            client.send_one()
    await asyncio.sleep(warmup)
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    state.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    state.measuring = False
    elapsed = time.perf_counter() - started
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    state.running = False
    await asyncio.sleep(0.2)
    for transport, _ in clients:
        transport.disconnect()
    latencies = sorted(state.latencies)

    def percentile(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 3) if latencies else None

    return {
        "messages": state.count,
        "per_second": round(state.count / elapsed, 1),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": state.errors,
        "client_cpu_s": round((cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime), 3),
        "seconds": round(elapsed, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="ws:// URL, or several separated by commas (connections round-robin over them)")
    parser.add_argument("template")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--wamp", metavar="REALM", help="speak WAMP v2 JSON in this realm (the Crossbar.io peer)")
    args = parser.parse_args()
    for url in args.url.split(","):
        if not (url.startswith("ws://127.") or url.startswith("ws://localhost") or url.startswith("ws://[::1]")):
            parser.error("load goes to loopback only")
    result = asyncio.run(run(args.url, args.template.encode(), args.connections, args.in_flight, args.duration, args.warmup, args.wamp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
