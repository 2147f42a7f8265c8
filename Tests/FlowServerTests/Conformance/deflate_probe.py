"""permessage-deflate through a real client (`websockets`, which offers it by default).

usage: deflate_probe.py PORT AUTHORIZATION MAX_MESSAGE_BYTES

Prints one JSON object: the extension the server agreed to (or null), the LIST(100) answer,
how the server met a message that inflates past the limit and a frame that does not inflate
(their close codes).
"""

import asyncio
import base64
import json
import os
import struct
import sys

import websockets

PORT, AUTHORIZATION, MAX_MESSAGE_BYTES = sys.argv[1], sys.argv[2], int(sys.argv[3])
URL = f"ws://127.0.0.1:{PORT}/ws/inventory/device"


async def corrupt_frame():
    """A compressed (RSV1) text frame whose payload is not deflate data, on a raw socket: the
    close code the server answers with, or the handshake's status when it agreed to nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/inventory/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
            f"Authorization: {AUTHORIZATION}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if b"permessage-deflate" not in head:
        writer.close()
        return None
    payload = b"\xff\xfe\xfd not deflate at all \x00\x01"
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    writer.write(bytes([0x80 | 0x40 | 0x1, 0x80 | len(payload)]) + mask + masked)
    await writer.drain()
    frame = await asyncio.wait_for(reader.read(64), 10)
    writer.close()
    if len(frame) >= 4 and frame[0] & 0x0F == 0x8:
        return struct.unpack("!H", frame[2:4])[0]
    return "no close frame"


async def main():
    result = {}
    async with websockets.connect(URL, additional_headers={"Authorization": AUTHORIZATION}, max_size=None) as ws:
        result["extension"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        for index in range(100):
            device = {"name": f"device {index} in the north wing", "serial": f"SN-{index:05d}", "site": "HQ", "model": "X-1000", "ports": 48}
            await ws.send(json.dumps({"method": "CREATE", "data": device, "requestid": f"c{index}"}))
            answer = json.loads(await ws.recv())
            assert answer["success"], answer
        await ws.send(json.dumps({"method": "LIST", "parameters": {"limit": 100}, "requestid": "l"}))
        text = await ws.recv()
        answer = json.loads(text)
        result["list_count"] = len(answer["data"])
        result["list_text_bytes"] = len(text.encode("utf-8"))

    # A message that inflates past the limit: a few KB compressed, MAX_MESSAGE_BYTES + 1 MiB as text.
    async with websockets.connect(URL, additional_headers={"Authorization": AUTHORIZATION}, max_size=None) as ws:
        bomb = '{"method":"OPEN","objectid":"' + "a" * (MAX_MESSAGE_BYTES + (1 << 20)) + '"}'
        try:
            await ws.send(bomb)
            await asyncio.wait_for(ws.recv(), 10)
            result["bomb"] = "answered"
        except websockets.ConnectionClosed as closed:
            result["bomb"] = closed.rcvd.code if closed.rcvd else "dropped"
        except asyncio.TimeoutError:
            result["bomb"] = "no answer"
    result["corrupt"] = await corrupt_frame()
    # The gateway is fine afterwards.
    async with websockets.connect(URL, additional_headers={"Authorization": AUTHORIZATION}) as ws:
        await ws.send(json.dumps({"method": "LIST", "parameters": {"limit": 1}}))
        result["after"] = json.loads(await ws.recv())["success"]
    print(json.dumps(result))


asyncio.run(main())
