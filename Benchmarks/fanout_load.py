#!/usr/bin/env python3
"""Fan-out load for flowgate-bench: SUBSCRIBERS watch one collection while one writer CREATEs
objects at RATE writes/s for DURATION seconds.

    fanout_load.py HOST PORT TOKEN --subscribers 1000 --rate 50 --duration 10 [--transport ws|sse]

Subscribers are WebSockets (picows) holding a `system/watches` watch, or Server-Sent Events
streams (plain asyncio connections). The writer is one more WebSocket that sends CREATEs on a
fixed schedule (with requestids, not waiting for answers) and notes when each is
acknowledged. Every event a subscriber receives is matched by its objectid to that acknowledgement: write-to-delivery latency is
receive time minus acknowledgement time, on the client's clock (an event that arrives before
the acknowledgement counts as 0). Prints one JSON object: events/s delivered, expected, lost,
latency percentiles (ms), the writer's acknowledged writes/s, and the client's CPU time.
Traffic goes only to HOST, which the caller keeps on loopback.
"""
import argparse
import asyncio
import json
import resource
import time

from picows import WSListener, WSMsgType, ws_connect

NAMESPACE = "inventory/device"
MARK = b'"objectid":"'


class Tally:
    def __init__(self):
        self.received = []   # (objectid bytes, monotonic time)
        self.acked = {}      # objectid bytes -> monotonic time
        self.ready = 0
        self.errors = 0


def scan(tally, payload, now):
    """Records every event in `payload` (one frame, or a chunk of an event stream)."""
    at = payload.find(MARK)
    while at >= 0:
        start = at + len(MARK)
        end = payload.find(b'"', start)
        if end < 0:
            break
        tally.received.append((payload[start:end], now))
        # An SSE event carries the objectid twice (frame and data object): skip to the next event.
        at = payload.find(b"\n\n", end)
        at = payload.find(MARK, at) if at >= 0 else -1


class Watcher(WSListener):
    def __init__(self, tally, sse=False):
        self.tally = tally
        self.watching = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport):
        frame = {"method": "CREATE", "namespace": "system/watches", "requestid": 1, "data": {"namespace": NAMESPACE}}
        transport.send(WSMsgType.TEXT, json.dumps(frame).encode())

    def on_ws_frame(self, transport, frame):
        payload = frame.get_payload_as_bytes()
        if not self.watching.done():
            if b'"success":true' in payload:
                self.watching.set_result(True)
            else:
                self.tally.errors += 1
                self.watching.set_result(False)
            return
        if payload.startswith(b'{"event":"overflow"') or payload.startswith(b'{"event":"ended"'):
            self.tally.errors += 1
        scan(self.tally, payload, time.monotonic())


class StreamWatcher(asyncio.Protocol):
    def __init__(self, tally):
        self.tally = tally
        self.watching = asyncio.get_running_loop().create_future()
        self.head = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        now = time.monotonic()
        if not self.watching.done():
            self.head += data
            if b"retry:" in self.head:
                self.watching.set_result(self.head.startswith(b"HTTP/1.1 200"))
            return
        # Events may be split across reads: scan whole ones, keep the rest.
        self.head += data
        cut = self.head.rfind(b"\n\n")
        if cut >= 0:
            scan(self.tally, self.head[:cut], now)
            self.head = self.head[cut:]


class Writer(WSListener):
    """Sends CREATEs on schedule, without waiting for the previous one's answer (each carries a
    requestid), so the rate holds however long acknowledgements take."""

    def __init__(self, tally):
        self.tally = tally
        self.objectids = {}  # requestid -> objectid bytes
        self.answered = 0
        self.connected = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport):
        self.connected.set_result(transport)

    def on_ws_frame(self, transport, frame):
        now = time.monotonic()
        payload = frame.get_payload_as_bytes()
        if b'"success":true' not in payload:
            self.tally.errors += 1
        at = payload.rfind(b'"requestid":')
        if at >= 0:
            end = at + 12
            while end < len(payload) and payload[end] in b"0123456789":
                end += 1
            objectid = self.objectids.pop(int(payload[at + 12:end]), None)
            if objectid is not None:
                self.tally.acked[objectid] = now
        self.answered += 1


async def run(args):
    tally = Tally()
    base = f"ws://{args.host}:{args.port}/ws?token={args.token}"
    watchers = []
    loop = asyncio.get_running_loop()
    for index in range(args.subscribers):
        if args.transport == "ws":
            transport, listener = await ws_connect(lambda: Watcher(tally), base)
            watchers.append((transport, listener))
        else:
            transport, listener = await loop.create_connection(lambda: StreamWatcher(tally), args.host, args.port)
            transport.write(
                f"GET /api/inventory/{NAMESPACE}/ HTTP/1.1\r\nHost: {args.host}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {args.token}\r\n\r\n".encode())
            watchers.append((transport, listener))
        if index % 100 == 99:
            await asyncio.gather(*(listener.watching for _, listener in watchers))
    ok = await asyncio.gather(*(listener.watching for _, listener in watchers))
    if not all(ok):
        raise SystemExit(f"{ok.count(False)} subscribers could not watch")

    writer_transport, writer = await ws_connect(lambda: Writer(tally), base)
    await writer.connected
    run_id = f"{time.time_ns() % 10**9}"
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    # The writer stops at the end of the duration even if it fell behind its schedule (a
    # saturated server acknowledges slowly): what it wrote is what is expected.
    writes = 0
    for number in range(int(args.rate * args.duration)):
        if time.monotonic() > started + args.duration:
            break
        writes += 1
        due = started + number / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        objectid = f"f{run_id}-{number}"
        frame = {"method": "CREATE", "namespace": NAMESPACE, "requestid": number,
                 "data": {"id": objectid, "name": "fan-out", "serial": f"SN-{number:06d}"}}
        writer.objectids[number] = objectid.encode()
        writer_transport.send(WSMsgType.TEXT, json.dumps(frame).encode())
    write_seconds = time.monotonic() - started
    acks = time.monotonic() + 10
    while writer.answered < writes and time.monotonic() < acks:
        await asyncio.sleep(0.01)
    # Let the last events arrive (bounded).
    expected = writes * args.subscribers
    settle = time.monotonic() + 10
    while len(tally.received) < expected and time.monotonic() < settle:
        await asyncio.sleep(0.05)
    elapsed = max(tally.received[-1][1] - started, write_seconds) if tally.received else write_seconds
    usage_after = resource.getrusage(resource.RUSAGE_SELF)

    latencies = []
    for objectid, at in tally.received:
        acked = tally.acked.get(objectid)
        if acked is not None:
            latencies.append(max(0.0, at - acked) * 1000)
    latencies.sort()

    def percentile(p):
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 3) if latencies else None

    writer_transport.disconnect()
    for transport, _ in watchers:
        if args.transport == "ws":
            transport.disconnect()
        else:
            transport.close()
    return {
        "subscribers": args.subscribers, "rate": args.rate, "writes": writes, "writes_per_second": round(writes / write_seconds, 1),
        "per_second": round(len(tally.received) / elapsed, 1), "expected": expected, "received": len(tally.received),
        "lost": expected - len(tally.received), "p50_ms": percentile(50), "p99_ms": percentile(99), "errors": tally.errors,
        "client_cpu_s": round((usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime), 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("token")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--transport", choices=["ws", "sse"], default="ws")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.subscribers + 1000)), hard))
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
