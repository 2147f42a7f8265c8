// flowgate.js against the real daemon: node --test --experimental-websocket Tests/Client/
// (after `swift build`, which makes .build/debug/flowgate; FLOWGATE_BINARY names another).
// Every daemon listens on loopback and is stopped by the test that started it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, FlowError } from "../../Sources/FlowServer/Resources/client/flowgate.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const binary = process.env.FLOWGATE_BINARY ?? join(root, ".build", "debug", "flowgate");
const password = "client-test-password";

class Daemon {
  static async start({ port = 0, folder, environment = {} } = {}) {
    const daemon = new Daemon();
    daemon.folder = folder ?? mkdtempSync(join(tmpdir(), "flowgate-client-"));
    daemon.process = spawn(
      binary,
      ["serve", "--port", String(port), "--endpoints", join(root, "Endpoints"), "--schemas", join(root, "Schemas")],
      { cwd: daemon.folder, env: { ...process.env, FLOWGATE_ADMIN_PASSWORD: password, FLOWGATE_BCRYPT_COST: "4", ...environment }, stdio: ["ignore", "ignore", "pipe"] },
    );
    daemon.exited = new Promise((resolve) => daemon.process.on("exit", resolve));
    let log = "";
    daemon.port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the daemon did not start:\n${log}`)), 20000);
      daemon.process.stderr.on("data", (chunk) => {
        log += chunk;
        const match = /flow\.address=127\.0\.0\.1:(\d+)/.exec(log);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      daemon.process.on("exit", () => reject(new Error(`the daemon exited:\n${log}`)));
    });
    daemon.base = `http://127.0.0.1:${daemon.port}`;
    return daemon;
  }

  async stop({ keepFolder = false } = {}) {
    this.process.kill("SIGTERM");
    await this.exited;
    if (!keepFolder) rmSync(this.folder, { recursive: true, force: true });
  }

  async api(method, path, body, token) {
    const headers = { "Content-Type": "application/json" };
    headers.Authorization = token ? `Bearer ${token}` : "Basic " + Buffer.from(`admin:${password}`).toString("base64");
    const response = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return response.json();
  }

  async session() {
    const response = await this.api("POST", "/api/auth/auth/session", { username: "admin", password });
    return response.data.token;
  }

  async device(id, fields = {}) {
    const response = await this.api("POST", "/api/inventory/inventory/device/", { id, name: `device ${id}`, serial: `SN-${id}`, ...fields });
    assert.equal(response.success, true, JSON.stringify(response));
    return response.data;
  }
}

/** Waits (polling, at most `ms`) until `condition()` holds. */
async function until(condition, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("the daemon serves the module and its types as they are in the repository", async () => {
  const daemon = await Daemon.start();
  try {
    const served = await fetch(`${daemon.base}/client/flowgate.js`);
    assert.equal(served.status, 200);
    assert.match(served.headers.get("content-type"), /^text\/javascript/);
    assert.equal(served.headers.get("access-control-allow-origin"), "*", "a page on another origin may import it");
    assert.equal(await served.text(), readFileSync(join(root, "Sources/FlowServer/Resources/client/flowgate.js"), "utf8"));
    assert.equal((await fetch(`${daemon.base}/client/flowgate.d.ts`)).status, 200);
  } finally {
    await daemon.stop();
  }
});

test("calls resolve with their response, many in flight; failures reject with errorcode and errorid", async () => {
  const daemon = await Daemon.start();
  const flow = connect(`ws://127.0.0.1:${daemon.port}/ws`, { token: await daemon.session() });
  try {
    const created = await flow.call("CREATE", "inventory/device", { data: { id: "sw-1", name: "core", serial: "SN-1" } });
    assert.equal(created.success, true);
    assert.equal(created.data.id, "sw-1");
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        index % 2 ? flow.call("OPEN", "inventory/device", { objectid: "sw-1" }) : flow.call("LIST", "inventory/device", { parameters: { limit: 1 } }),
      ),
    );
    answers.forEach((answer, index) => assert.equal(index % 2 ? answer.data.id : answer.data.length, index % 2 ? "sw-1" : 1));

    await assert.rejects(flow.call("CREATE", "inventory/device", { data: { name: "no serial" } }), (error) => {
      assert.ok(error instanceof FlowError);
      assert.equal(error.errorcode, "VALIDATION_FAILED");
      assert.match(error.errorid, /^[0-9a-f-]{36}$/);
      assert.equal(error.data.errors[0].path, "/serial");
      return true;
    });
    await assert.rejects(flow.call("OPEN", "no/such", { objectid: "x" }), { errorcode: "NO_SUCH_ENDPOINT" });
    await assert.rejects(flow.call("OPEN", "inventory/device", { objectid: "missing" }), { errorcode: "DO_NOT_EXIST" });
  } finally {
    flow.close();
    await daemon.stop();
  }
});

test("after the server goes away, calls wait or fail fast as asked, and a watch resumes with nothing lost or repeated", async () => {
  const first = await Daemon.start();
  const port = first.port;
  const token = await first.session();
  const flow = connect(`ws://127.0.0.1:${port}/ws`, { token, minDelayMs: 100, maxDelayMs: 400 });
  const events = [];
  const watch = flow.watch("inventory/device");
  watch.on("*", (event) => events.push(event));
  try {
    await until(() => flow.state === "open");
    await first.device("before-1");
    await first.device("before-2");
    await until(() => events.length === 2);

    // The daemon stops (its sockets close with 1001) and comes back on the same port and data.
    await first.stop({ keepFolder: true });
    await until(() => flow.state === "connecting");
    await assert.rejects(flow.call("LIST", "inventory/device", { waitForConnection: false }), { errorcode: "DISCONNECTED" });
    const waiting = flow.call("LIST", "inventory/device");
    const second = await Daemon.start({ port, folder: first.folder });
    try {
      // Written while the client's socket is down or just coming back.
      await second.device("while-1");
      await second.device("while-2");
      await second.device("while-3");
      const listed = await waiting;
      assert.equal(listed.success, true, "the call made while disconnected ran once connected");
      await until(() => events.length === 5);
      await second.device("after-1");
      await until(() => events.length === 6);
      assert.deepEqual(
        events.map((event) => `${event.event} ${event.objectid}`),
        ["before-1", "before-2", "while-1", "while-2", "while-3", "after-1"].map((id) => `created ${id}`),
      );
      const positions = events.map((event) => Number(event.position.split(".")[1]));
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
    } finally {
      watch.close();
      flow.close();
      await second.stop();
    }
  } finally {
    flow.close();
    if (first.process.exitCode === null) await first.stop();
  }
});

test("listAndWatch keeps an ordered array current", async () => {
  const daemon = await Daemon.start();
  const flow = connect(`ws://127.0.0.1:${daemon.port}/ws`, { token: await daemon.session() });
  try {
    await daemon.device("a");
    await daemon.device("b");
    let changes = 0;
    const list = flow.listAndWatch("inventory/device", { onChange: () => changes++ });
    await list.ready;
    assert.deepEqual(list.items.map((item) => item.id), ["a", "b"]);
    await daemon.device("c");
    await until(() => list.items.length === 3);
    await daemon.api("PATCH", "/api/inventory/inventory/device/a", { site: "Lab" });
    await until(() => list.items[0].site === "Lab");
    await daemon.api("DELETE", "/api/inventory/inventory/device/b");
    await until(() => list.items.length === 2);
    assert.deepEqual(list.items.map((item) => item.id), ["a", "c"]);
    assert.ok(changes >= 4);
    list.close();
  } finally {
    flow.close();
    await daemon.stop();
  }
});

test("a position the server no longer keeps gives an expired event, then the watch goes on from now", async () => {
  const daemon = await Daemon.start({ environment: { FLOWGATE_CHANGE_LOG_MAX_CHANGES: "3" } });
  const flow = connect(`ws://127.0.0.1:${daemon.port}/ws`, { token: await daemon.session() });
  try {
    const old = (await flow.call("LIST", "inventory/device")).paging.position;
    for (const id of ["x1", "x2", "x3", "x4", "x5"]) await daemon.device(id);
    const events = [];
    const watch = flow.watch("inventory/device", { since: old });
    watch.on("*", (event) => events.push(event));
    await until(() => events.length === 1);
    assert.equal(events[0].event, "expired");
    // Subscribed again from now: the next write arrives, none of the old ones.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await daemon.device("x6");
    await until(() => events.length === 2);
    assert.equal(events[1].objectid, "x6");
    watch.close();
  } finally {
    flow.close();
    await daemon.stop();
  }
});
