#!/usr/bin/env python3
"""flowgate.js in a real browser: headless Chromium (Debian's `chromium`), driven over the
DevTools protocol with `websockets`, against the daemon binary `swift test` built.

Two browser contexts (separate cookies, storage and sockets) each import /client/flowgate.js
from the daemon, sign in through auth/session and keep a live list of inventory/device. A
device created over HTTP must show in both within a second, an update made in one must show
in the other, and a validation error must reach the page with its errorcode and errorid.
Then the README's "From the browser" page, taken from the README itself (its password prompt
and ports filled in), is served from another origin and must list the devices and follow a
new one.

    python3 Tests/Browser/flowgate_browser_test.py      # exits 0 when every check passed

Everything listens on loopback; the daemon and the browser are stopped at the end.
"""
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("FLOWGATE_BINARY", os.path.join(ROOT, ".build", "debug", "flowgate"))
PASSWORD = "browser-test-password"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_daemon(folder, cors_origin):
    environment = dict(os.environ, FLOWGATE_ADMIN_PASSWORD=PASSWORD, FLOWGATE_BCRYPT_COST="4", FLOWGATE_CORS_ORIGINS=cors_origin)
    process = subprocess.Popen(
        [BINARY, "serve", "--port", "0", "--endpoints", os.path.join(ROOT, "Endpoints"), "--schemas", os.path.join(ROOT, "Schemas")],
        cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    log = ""
    while time.time() < deadline:
        line = process.stderr.readline()
        log += line
        match = re.search(r"flow\.address=127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if process.poll() is not None:
            break
    process.kill()
    raise SystemExit(f"the daemon did not start:\n{log}")


def start_browser(profile):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    port = free_port()
    process = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1) as response:
                return process, json.loads(response.read())["webSocketDebuggerUrl"], port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("chromium did not start")


class DevTools:
    """One DevTools protocol connection (the browser's or a page's)."""

    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0

    @classmethod
    async def open(cls, url):
        return cls(await websockets.connect(url, max_size=1 << 26))

    async def send(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression):
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"in the page: {result['exceptionDetails']}")
        return result["result"].get("value")


SIGN_IN = """(async () => {
  const { connect } = await import("/client/flowgate.js");
  const login = await fetch("/api/auth/auth/session", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "admin", password: %s }) });
  window.flow = connect("/ws", { token: (await login.json()).data.token });
  window.devices = [];
  window.list = flow.listAndWatch("inventory/device", { onChange: (items) => { window.devices = items.map((d) => `${d.id}:${d.site ?? ""}`); } });
  await list.ready;
  return devices.length;
})()""" % json.dumps(PASSWORD)


async def until(page, expression, limit):
    """Polls `expression` in the page until it is true, for at most `limit` seconds; the time it took."""
    started = time.time()
    while time.time() - started < limit:
        if await page.evaluate(expression):
            return time.time() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {limit} s: {expression} (devices: {await page.evaluate('window.devices')})")


def http(port, method, path, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
        headers={"Content-Type": "application/json", "Authorization": "Basic " + __import__("base64").b64encode(f"admin:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def readme_page(daemon_port):
    """The README's example page, as pasted, with the prompt answered and the daemon's port."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        text = readme.read()
    section = text[text.index("## From the browser"):]
    page = re.search(r"```html\n(.*?)```", section, re.S).group(1)
    page = page.replace('prompt("admin\'s password")', json.dumps(PASSWORD))
    assert json.dumps(PASSWORD) in page, "the README page's password prompt moved: update this test"
    return page.replace("127.0.0.1:8080", f"127.0.0.1:{daemon_port}")


async def run(daemon_port, browser_url, browser_port, page_port):
    browser = await DevTools.open(browser_url)
    pages = []
    for _ in range(2):
        context = (await browser.send("Target.createBrowserContext"))["browserContextId"]
        # A page of the daemon's origin (any file of it): the module, the API and the socket are same-origin.
        target = (await browser.send("Target.createTarget", url=f"http://127.0.0.1:{daemon_port}/client/flowgate.d.ts", browserContextId=context))["targetId"]
        page = await DevTools.open(f"ws://127.0.0.1:{browser_port}/devtools/page/{target}")
        await until(page, "document.readyState === 'complete'", 10)
        assert await page.evaluate(SIGN_IN) == 0
        pages.append(page)
    first, second = pages

    created = http(daemon_port, "POST", "/api/inventory/inventory/device/", {"id": "b1", "name": "browser", "serial": "SN-b1", "site": "HQ"})
    assert created["success"], created
    took = [await until(page, "devices.includes('b1:HQ')", 1.0) for page in pages]
    print(f"ok: a device created over HTTP shows in both contexts ({max(took) * 1000:.0f} ms)")

    answer = await first.evaluate("flow.call('UPDATE', 'inventory/device', { objectid: 'b1', data: { site: 'Lab' } }).then((r) => r.success)")
    assert answer is True
    await until(second, "devices.includes('b1:Lab')", 1.0)
    print("ok: an update made in one context shows in the other")

    failure = await second.evaluate(
        "flow.call('CREATE', 'inventory/device', { data: { name: 'no serial' } }).then(() => null, (e) => [e.name, e.errorcode, e.errorid, e.data.errors[0].path])")
    assert failure[0] == "FlowError" and failure[1] == "VALIDATION_FAILED" and re.fullmatch(r"[0-9a-f-]{36}", failure[2]) and failure[3] == "/serial", failure
    print("ok: a validation error reaches the page with its errorcode, errorid and path")

    context = (await browser.send("Target.createBrowserContext"))["browserContextId"]
    target = (await browser.send("Target.createTarget", url=f"http://127.0.0.1:{page_port}/live.html", browserContextId=context))["targetId"]
    example = await DevTools.open(f"ws://127.0.0.1:{browser_port}/devtools/page/{target}")
    items = "[...document.querySelectorAll('#devices li')].map((li) => li.textContent)"
    await until(example, f"{items}.includes('b1: browser')", 10)
    http(daemon_port, "POST", "/api/inventory/inventory/device/", {"id": "b2", "name": "second", "serial": "SN-b2"})
    await until(example, f"{items}.join() === 'b1: browser,b2: second'", 2)
    print("ok: the README's page, served from another origin, lists the devices and follows a new one")

    for page in pages:
        await page.evaluate("flow.close(), true")
        await page.socket.close()
    await example.socket.close()
    await browser.socket.close()


def main():
    folder = tempfile.mkdtemp(prefix="flowgate-browser-")
    page_port = free_port()
    daemon, daemon_port = start_daemon(folder, f"http://127.0.0.1:{page_port}")
    browser = pages = None
    try:
        site = os.path.join(folder, "site")
        os.makedirs(site)
        with open(os.path.join(site, "live.html"), "w") as page:
            page.write(readme_page(daemon_port))
        pages = subprocess.Popen([sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1", "--directory", site],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        browser, browser_url, browser_port = start_browser(os.path.join(folder, "profile"))
        asyncio.run(asyncio.wait_for(run(daemon_port, browser_url, browser_port, page_port), 120))
    finally:
        for process in (browser, pages, daemon):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    print("browser tests passed")


if __name__ == "__main__":
    main()
