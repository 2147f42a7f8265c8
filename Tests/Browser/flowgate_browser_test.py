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


def start_daemon(folder, cors_origin, definitions=ROOT):
    environment = dict(os.environ, FLOWGATE_ADMIN_PASSWORD=PASSWORD, FLOWGATE_BCRYPT_COST="4", FLOWGATE_CORS_ORIGINS=cors_origin)
    process = subprocess.Popen(
        [BINARY, "serve", "--port", "0", "--endpoints", os.path.join(definitions, "Endpoints"), "--schemas", os.path.join(definitions, "Schemas")],
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
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}",
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
        f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(), method=method,
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

    await dashboard_checks(browser, browser_port, daemon_port)
    await new_collection_checks(browser, browser_port)

    for page in pages:
        await page.evaluate("flow.close(), true")
        await page.socket.close()
    await example.socket.close()
    await browser.socket.close()


async def open_page(browser, browser_port, url):
    """A page in a browser context of its own."""
    context = (await browser.send("Target.createBrowserContext"))["browserContextId"]
    target = (await browser.send("Target.createTarget", url=url, browserContextId=context))["targetId"]
    page = await DevTools.open(f"ws://127.0.0.1:{browser_port}/devtools/page/{target}")
    await page.send("Emulation.setDeviceMetricsOverride", width=1200, height=760, deviceScaleFactor=1, mobile=False)
    return page


async def sign_in_to_dashboard(page, namespace):
    await until(page, "!!document.querySelector('#sign-in') && !document.querySelector('#sign-in').hidden", 10)
    await page.evaluate(
        "(() => { const form = document.querySelector('#sign-in'); form.username.value = 'admin'; form.password.value = %s; form.requestSubmit(); return true })()"
        % json.dumps(PASSWORD))
    item = f"document.querySelector('#endpoints li[data-namespace=\"{namespace}\"]')"
    await until(page, f"!!{item}", 10)
    await page.evaluate(f"{item}.click(), true")


def rows(column=None):
    """The table's rows as 'id' (or 'id:<column value>') strings, in the page."""
    if column is None:
        return "[...document.querySelectorAll('#table tbody tr')].map((tr) => tr.dataset.id)"
    return ("(() => { const names = [...document.querySelectorAll('#table thead th')].map((th) => th.textContent);"
            f" const at = names.indexOf('{column}');"
            " return [...document.querySelectorAll('#table tbody tr')].map((tr) => tr.dataset.id + ':' + tr.children[at].textContent) })()")


def fill(fields):
    """Sets the editor's fields (by JSON pointer) and submits it, in the page."""
    sets = "; ".join(f"document.querySelector('#fields [name=\"{name}\"]').value = {json.dumps(value)}" for name, value in fields.items())
    return f"(() => {{ {sets}; document.querySelector('#editor').requestSubmit(); return true }})()"


async def dashboard_checks(browser, browser_port, daemon_port):
    base = f"http://127.0.0.1:{daemon_port}/dashboard/"
    with urllib.request.urlopen(base, timeout=5) as response:
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
        assert "<script>" not in response.read().decode(), "no inline script"
    first = await open_page(browser, browser_port, base)
    second = await open_page(browser, browser_port, base)
    for page in (first, second):
        await sign_in_to_dashboard(page, "inventory/device")
        await until(page, f"{rows()}.includes('b1')", 5)
    print("ok: the dashboard signs in and shows inventory/device's table, in two contexts")

    # Create through the form: first a value the schema refuses, shown at its field.
    await first.evaluate("document.querySelector('#new').click(), true")
    await until(first, "!document.querySelector('#editor').hidden", 5)
    await first.evaluate(fill({"/id": "form-1", "/name": "from the form", "/serial": "bad serial!"}))
    await until(first, "document.querySelector('[data-problem=\"/serial\"]').textContent.length > 0", 5)
    assert "VALIDATION_FAILED" in await first.evaluate("document.querySelector('#error').textContent")
    assert "errorid" in await first.evaluate("document.querySelector('#error').textContent")
    await first.evaluate(fill({"/serial": "SN-form-1", "/site": "HQ"}))
    for page in (first, second):
        await until(page, f"{rows()}.includes('form-1')", 2)
    print("ok: the form shows a validation error at its field, then creates the device; both tables show it")

    http(daemon_port, "POST", "/api/inventory/inventory/device/", {"id": "api-1", "name": "over HTTP", "serial": "SN-api-1", "site": "HQ"})
    took = [await until(page, f"{rows()}.includes('api-1')", 1.0) for page in (first, second)]
    print(f"ok: a device created over HTTP appears in both dashboards ({max(took) * 1000:.0f} ms)")

    await first.evaluate("document.querySelector('#table tbody tr[data-id=\"api-1\"]').click(), true")
    await until(first, "!document.querySelector('#editor').hidden", 5)
    await first.evaluate(fill({"/site": "Edge"}))
    await until(second, f"{rows('site')}.includes('api-1:Edge')", 1.0)
    print("ok: an update made in one dashboard shows in the other")

    # Delete with the rev the form was opened with: a change made meanwhile is a CONFLICT that
    # shows the current object; deleting again (now with its rev) goes through.
    await first.evaluate("document.querySelector('#table tbody tr[data-id=\"form-1\"]').click(), true")
    await until(first, "document.querySelector('#editor-title').textContent === 'Edit form-1'", 5)
    http(daemon_port, "PATCH", "/api/inventory/inventory/device/form-1", {"site": "moved"})
    await first.evaluate("document.querySelector('#delete').click(), true")
    await until(first, "!document.querySelector('#conflict').hidden", 5)
    assert "CONFLICT" in await first.evaluate("document.querySelector('#error').textContent")
    assert '"site": "moved"' in await first.evaluate("document.querySelector('#conflict').textContent")
    await first.evaluate("document.querySelector('#delete').click(), true")
    for page in (first, second):
        await until(page, f"!{rows()}.includes('form-1')", 2)
    print("ok: deleting with a stale rev shows the CONFLICT and the current object; again, it deletes")

    # Search is the server's full-text search over the collection's search fields.
    await second.evaluate("(() => { const box = document.querySelector('#search'); box.value = 'over'; box.dispatchEvent(new Event('input')); return true })()")
    await until(second, f"{rows()}.join() === 'api-1'", 3)
    await second.evaluate("(() => { const box = document.querySelector('#search'); box.value = ''; box.dispatchEvent(new Event('input')); return true })()")
    await until(second, f"{rows()}.length === 3", 3)
    print("ok: the search box narrows the table to the server's matches")

    # Paging: 20 rows a page, the next page from paging.next.
    for index in range(20):
        http(daemon_port, "POST", "/api/inventory/inventory/device/", {"id": f"p{index:02d}", "name": "paged", "serial": f"SN-p{index:02d}"})
    await until(second, f"{rows()}.length === 20 && !document.querySelector('#next').disabled", 3)
    await second.evaluate("document.querySelector('#next').click(), true")
    await until(second, f"{rows()}.join() === 'p17,p18,p19'", 3)
    await second.evaluate("document.querySelector('#first').click(), true")
    await until(second, f"{rows()}[0] === 'b1' && {rows()}.length === 20", 3)
    print("ok: the table pages through the collection")

    # A provider coming and going shows in the endpoint list (system/endpoints events).
    presence = "document.querySelector('#endpoints li[data-namespace=\"scheduler/queue\"] .presence').textContent"
    await until(first, f"{presence} === 'no provider'", 3)
    credential = "Basic " + __import__("base64").b64encode(f"admin:{PASSWORD}".encode()).decode()
    async with websockets.connect(f"ws://127.0.0.1:{daemon_port}/ws", additional_headers={"Authorization": credential}) as provider:
        await provider.send(json.dumps({"method": "CREATE", "namespace": "system/providers", "requestid": 1, "data": {"namespace": "scheduler/queue"}}))
        assert json.loads(await provider.recv())["success"]
        await until(first, f"{presence} === '1 provider'", 2)
    await until(first, f"{presence} === 'no provider'", 2)
    print("ok: a provider's coming and going shows live in the endpoint list")

    shot = await first.send("Page.captureScreenshot", format="png")
    artifacts = os.environ.get("FLOWGATE_ARTIFACTS", os.path.join(ROOT, ".build", "browser-artifacts"))
    os.makedirs(artifacts, exist_ok=True)
    with open(os.path.join(artifacts, "dashboard.png"), "wb") as image:
        image.write(__import__("base64").b64decode(shot["data"]))
    print(f"ok: screenshot in {artifacts}/dashboard.png")

    await second.evaluate("document.querySelector('#sign-out').click(), true")
    # The page reloads: until it has, there may be no form to look at.
    await until(second, "document.readyState === 'complete' && !!document.querySelector('#sign-in') && !document.querySelector('#sign-in').hidden && sessionStorage.length === 0", 5)
    print("ok: signing out forgets the session")
    for page in (first, second):
        await page.socket.close()


SAMPLE_ENDPOINT = {"namespace": "lab/sample", "title": "Lab samples", "kind": "collection", "schema": "lab/sample.schema.json",
                   "methods": ["LIST", "OPEN", "CREATE", "UPDATE", "DELETE"], "search": ["label"]}
SAMPLE_SCHEMA = {
    "type": "object", "required": ["label", "grade"], "additionalProperties": False,
    "properties": {
        "label": {"type": "string", "minLength": 1},
        "grade": {"enum": ["low", "mid", "high"]},
        "weight": {"type": "number", "minimum": 0, "maximum": 100},
        "origin": {"type": "object", "required": ["lab"], "additionalProperties": False,
                   "properties": {"lab": {"type": "string"}, "shelf": {"type": "integer", "minimum": 1}}},
    },
}


async def new_collection_checks(browser, browser_port):
    """The dashboard on a collection it was never written for: its own schema with an enum, a
    nested object and number bounds."""
    folder = tempfile.mkdtemp(prefix="flowgate-lab-")
    for kind, name, content in (("Endpoints", "sample.json", SAMPLE_ENDPOINT), ("Schemas", "sample.schema.json", SAMPLE_SCHEMA)):
        os.makedirs(os.path.join(folder, kind, "lab"))
        with open(os.path.join(folder, kind, "lab", name), "w") as file:
            json.dump(content, file)
    daemon, port = start_daemon(folder, "", definitions=folder)
    try:
        page = await open_page(browser, browser_port, f"http://127.0.0.1:{port}/dashboard/")
        await sign_in_to_dashboard(page, "lab/sample")
        await until(page, "[...document.querySelectorAll('#table thead th')].map((th) => th.textContent).join() === 'id,label,grade,weight'", 5)
        await page.evaluate("document.querySelector('#new').click(), true")
        await until(page, "!document.querySelector('#editor').hidden", 5)
        kinds = await page.evaluate("[...document.querySelectorAll('#fields [name]')].map((f) => f.name + ':' + f.tagName + ':' + (f.max || ''))")
        assert kinds == ["/id:INPUT:", "/label:INPUT:", "/grade:SELECT:", "/weight:INPUT:100", "/origin/lab:INPUT:", "/origin/shelf:INPUT:"], kinds
        await page.evaluate(fill({"/id": "s1", "/label": "first", "/grade": json.dumps("high"), "/weight": "150", "/origin/lab": "north", "/origin/shelf": "2"}))
        await until(page, "document.querySelector('[data-problem=\"/weight\"]').textContent.length > 0", 5)
        await page.evaluate(fill({"/weight": "42.5"}))
        await until(page, f"{rows('grade')}.includes('s1:high')", 2)
        stored = http(port, "GET", "/api/lab/lab/sample/s1", None)["data"]
        assert stored["origin"] == {"lab": "north", "shelf": 2} and stored["weight"] == 42.5, stored
        print("ok: a new collection's form comes from its schema (enum, nested object, bounds) and creates its object")
        await page.socket.close()
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        shutil.rmtree(folder, ignore_errors=True)


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
