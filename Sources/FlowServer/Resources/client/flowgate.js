// flowgate.js: the client for flowgate's WebSocket API (SPEC §5, §13), for browsers and
// Node 20+ (with --experimental-websocket). One ES module, no dependencies, no build step;
// the daemon serves it at /client/flowgate.js.
//
//   import { connect } from "/client/flowgate.js";
//   const flow = connect("/ws", { token });
//   const device = await flow.call("OPEN", "inventory/device", { objectid: "sw-1" });
//   for await (const event of flow.watch("inventory/device")) console.log(event.event, event.objectid);

/** A failure response, or a client-side failure (`DISCONNECTED`, `CLIENT_TIMEOUT`). */
export class FlowError extends Error {
  constructor(response) {
    super(response.message || response.errorcode || "flowgate error");
    this.name = "FlowError";
    this.errorcode = response.errorcode;
    this.errorid = response.errorid;
    this.data = response.data;
    this.response = response;
  }
}

/** Opens a connection to `url` (`ws://…/ws`, or a path resolved against the page). */
export function connect(url, options = {}) {
  return new Connection(url, options);
}

const defaults = {
  token: undefined,
  reconnect: true,
  minDelayMs: 250,
  maxDelayMs: 10000,
  timeoutMs: 30000,
  maxQueued: 1000,
  connectTimeoutMs: 10000,
};

export class Connection {
  constructor(url, options = {}) {
    this.options = { ...defaults, ...options };
    this.url = resolveURL(url, this.options.token);
    this.nextID = 1;
    this.pending = new Map(); // requestid -> {resolve, reject, timer, frame}
    this.queue = []; // frames waiting for the socket
    this.watches = new Map(); // server watch id -> Watch
    this.live = new Set(); // every Watch not closed, to resume after a reconnect
    this.listeners = { open: new Set(), close: new Set() };
    this.attempt = 0;
    this.closed = false;
    this.socket = null;
    this.open();
  }

  /** "connecting", "open" or "closed". */
  get state() {
    if (this.closed) return "closed";
    return this.socket && this.socket.readyState === 1 ? "open" : "connecting";
  }

  on(kind, listener) {
    this.listeners[kind].add(listener);
    return () => this.listeners[kind].delete(listener);
  }

  /**
   * Calls `method` on `namespace`; resolves with the response, rejects with a FlowError.
   * While disconnected the call waits for the connection (at most `maxQueued` calls), unless
   * `waitForConnection` is false: then it fails at once with DISCONNECTED.
   */
  call(method, namespace, { objectid, parameters, data, timeoutMs, waitForConnection = true, onAnswer } = {}) {
    const requestid = `c${this.nextID++}`;
    const frame = { method, namespace, requestid };
    if (objectid !== undefined) frame.objectid = objectid;
    if (parameters !== undefined) frame.parameters = parameters;
    if (data !== undefined) frame.data = data;
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(clientError("DISCONNECTED", "The connection was closed"));
      const open = this.state === "open";
      if (!open && (!waitForConnection || this.queue.length >= this.options.maxQueued)) {
        return reject(clientError("DISCONNECTED", "Not connected to flowgate"));
      }
      const limit = timeoutMs ?? this.options.timeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(requestid);
        this.queue = this.queue.filter((queued) => queued.requestid !== requestid);
        reject(clientError("CLIENT_TIMEOUT", `No answer within ${limit} ms`));
      }, limit);
      const text = JSON.stringify(frame);
      this.pending.set(requestid, { resolve, reject, timer, onAnswer, sent: open });
      if (open) this.socket.send(text);
      else this.queue.push({ requestid, text });
    });
  }

  /**
   * Watches `namespace` (SPEC §13): an async iterator of events, and `on(kind, fn)`. After a
   * reconnect it resumes with `since` the last event it delivered, so nothing is lost or
   * repeated; when the server no longer has that position (CURSOR_EXPIRED) it delivers
   * `{event: "expired"}` and starts over from now: list again.
   */
  watch(namespace, { objectid, filter, since } = {}) {
    const watch = new Watch(this, { namespace, objectid, filter });
    watch.position = since;
    this.live.add(watch);
    if (this.state === "open") watch.subscribe();
    return watch;
  }

  /**
   * A live, ordered array of a collection's objects: listed, then kept current by a watch
   * since the listing's position. `onChange(items)` runs after every change; `items` is the
   * current array (insertion order). On CURSOR_EXPIRED it lists again.
   */
  listAndWatch(namespace, { filter, onChange = () => {}, pageSize = 1000 } = {}) {
    return new LiveList(this, namespace, { filter, onChange, pageSize });
  }

  close() {
    this.closed = true;
    clearTimeout(this.retry);
    for (const watch of this.live) watch.finish();
    this.failPending("The connection was closed", true);
    if (this.socket) this.socket.close(1000);
  }

  // Internals

  open() {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      const queued = this.queue;
      this.queue = [];
      for (const { requestid, text } of queued) {
        const pending = this.pending.get(requestid);
        if (!pending) continue;
        pending.sent = true;
        socket.send(text);
      }
      for (const watch of this.live) watch.subscribe();
      for (const listener of this.listeners.open) listener();
    };
    socket.onmessage = (message) => this.receive(message.data);
    // Once per socket: a refused connection may report only an error (Node's WebSocket does),
    // and one that hangs while connecting is given up after connectTimeoutMs.
    let ended = false;
    const lost = (code) => {
      if (ended || this.socket !== socket) return;
      ended = true;
      clearTimeout(connecting);
      this.lost(code);
    };
    const connecting = setTimeout(() => {
      if (socket.readyState !== 1) {
        lost(1006);
        try { socket.close(); } catch {}
      }
    }, this.options.connectTimeoutMs);
    socket.addEventListener("open", () => clearTimeout(connecting));
    socket.onclose = (event) => lost(event.code);
    socket.onerror = () => {
      if (socket.readyState !== 1) lost(1006);
    };
  }

  lost(code) {
    this.watches.clear();
    this.failPending("The connection closed before the answer");
    for (const listener of this.listeners.close) listener({ code });
    if (code === 4001) return this.close(); // the credential is revoked: retrying cannot help
    if (this.closed || !this.options.reconnect) return;
    // Jittered exponential backoff.
    const ceiling = Math.min(this.options.maxDelayMs, this.options.minDelayMs * 2 ** this.attempt++);
    this.retry = setTimeout(() => this.open(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.event !== undefined) {
      this.watches.get(frame.watch)?.deliver(frame);
      return;
    }
    const pending = frame.requestid !== undefined ? this.pending.get(frame.requestid) : undefined;
    if (!pending) return;
    this.pending.delete(frame.requestid);
    clearTimeout(pending.timer);
    // Before the promise settles: the next message may be handled before its continuation runs.
    pending.onAnswer?.(frame);
    if (frame.success) pending.resolve(frame);
    else pending.reject(new FlowError(frame));
  }

  /** Fails the calls sent on the lost socket (their answer cannot come); with `all`, the
   *  queued ones too. */
  failPending(message, all = false) {
    for (const [requestid, pending] of this.pending) {
      if (!pending.sent && !all) continue;
      this.pending.delete(requestid);
      clearTimeout(pending.timer);
      pending.reject(clientError("DISCONNECTED", message));
    }
    if (all) this.queue = [];
  }
}

class Watch {
  constructor(connection, request) {
    this.connection = connection;
    this.request = request;
    this.position = undefined;
    this.serverID = undefined;
    this.buffer = [];
    this.waiting = [];
    this.handlers = new Map();
    this.done = false;
    this.error = undefined;
  }

  /** Calls `listener(event)` for events of `kind` ("created", "updated", "deleted", "expired", "ended", or "*"). */
  on(kind, listener) {
    if (!this.handlers.has(kind)) this.handlers.set(kind, new Set());
    this.handlers.get(kind).add(listener);
    return () => this.handlers.get(kind).delete(listener);
  }

  /** Ends the watch. */
  close() {
    if (this.serverID && this.connection.state === "open") {
      this.connection.call("DELETE", "system/watches", { objectid: this.serverID, waitForConnection: false }).catch(() => {});
    }
    this.finish();
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => {
        if (this.buffer.length > 0) return Promise.resolve({ value: this.buffer.shift(), done: false });
        if (this.error) return Promise.reject(this.error);
        if (this.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  async subscribe() {
    if (this.done) return;
    const data = { namespace: this.request.namespace };
    if (this.request.objectid !== undefined) data.objectid = this.request.objectid;
    if (this.request.filter !== undefined) data.filter = this.request.filter;
    if (this.position !== undefined) data.since = this.position;
    try {
      // The answer comes before the watch's first event; the watch is known by its id as soon
      // as the answer is read, before any later message.
      await this.connection.call("CREATE", "system/watches", {
        data,
        waitForConnection: false,
        onAnswer: (frame) => {
          if (!frame.success || this.done) return;
          this.serverID = frame.data.id;
          this.connection.watches.set(this.serverID, this);
          if (this.position === undefined) this.position = frame.data.position;
        },
      });
    } catch (error) {
      if (error.errorcode === "DISCONNECTED") return; // the next connection subscribes again
      if (error.errorcode === "CURSOR_EXPIRED") {
        this.position = undefined;
        this.emit({ event: "expired", namespace: this.request.namespace, reason: error.message });
        return this.subscribe();
      }
      this.fail(error);
    }
  }

  deliver(frame) {
    if (frame.event === "overflow") {
      // The socket fell behind: resume where delivery stopped.
      this.connection.watches.delete(this.serverID);
      this.position = frame.position;
      this.subscribe();
      return;
    }
    if (frame.event === "ended") {
      this.connection.watches.delete(this.serverID);
      this.emit(frame);
      this.fail(new FlowError({ errorcode: frame.reason === "forbidden" ? "FORBIDDEN" : "UNAUTHENTICATED", message: `The watch ended: ${frame.reason}` }));
      return;
    }
    if (frame.position !== undefined) this.position = frame.position;
    this.emit(frame);
  }

  emit(event) {
    for (const kind of [event.event, "*"]) for (const listener of this.handlers.get(kind) ?? []) listener(event);
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve({ value: event, done: false });
    else if (this.handlers.size === 0) this.buffer.push(event);
  }

  fail(error) {
    this.error = error;
    this.finish();
  }

  finish() {
    this.done = true;
    this.connection.live.delete(this);
    const waiting = this.waiting;
    this.waiting = [];
    for (const waiter of waiting) this.error ? waiter.reject(this.error) : waiter.resolve({ value: undefined, done: true });
  }
}

class LiveList {
  constructor(connection, namespace, { filter, onChange, pageSize }) {
    this.connection = connection;
    this.namespace = namespace;
    this.filter = filter;
    this.onChange = onChange;
    this.pageSize = pageSize;
    this.byID = new Map();
    this.watch = undefined;
    this.ready = this.load();
  }

  /** The objects, in insertion order. */
  get items() {
    return [...this.byID.values()];
  }

  close() {
    this.watch?.close();
  }

  async load() {
    this.watch?.close();
    const byID = new Map();
    let cursor;
    let position;
    do {
      const parameters = { limit: this.pageSize };
      if (this.filter) parameters.filter = this.filter;
      if (cursor) parameters.cursor = cursor;
      const page = await this.connection.call("LIST", this.namespace, { parameters });
      for (const object of page.data) byID.set(object.id, object);
      position ??= page.paging?.position;
      cursor = page.paging?.next;
    } while (cursor);
    this.byID = byID;
    this.onChange(this.items);
    this.watch = this.connection.watch(this.namespace, { filter: this.filter, since: position });
    this.watch.on("*", (event) => this.apply(event));
  }

  apply(event) {
    switch (event.event) {
      case "created":
      case "updated":
        this.byID.set(event.objectid, event.data);
        break;
      case "deleted":
        this.byID.delete(event.objectid);
        break;
      case "expired":
        this.ready = this.load();
        return;
      default:
        return;
    }
    this.onChange(this.items);
  }
}

function clientError(errorcode, message) {
  return new FlowError({ errorcode, message });
}

function resolveURL(url, token) {
  let resolved = url;
  if (!/^wss?:/.test(url) && typeof location !== "undefined") {
    resolved = new URL(url, location.href.replace(/^http/, "ws")).href;
  }
  if (token) resolved += (resolved.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  return resolved;
}
