// The flowgate dashboard: every collection's table and forms, generated from its JSON Schema,
// kept live through a watch. Plain ES module on flowgate.js; no inline script (strict CSP).
import { connect } from "/client/flowgate.js";

const $ = (selector) => document.querySelector(selector);
const state = { flow: null, endpoints: new Map(), current: null, watch: null, cursor: undefined, pageCursor: undefined, editing: null, reload: 0 };
const PAGE = 20;

// Sign in and out

async function signIn(username, password) {
  const response = await fetch("/api/auth/auth/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const answer = await response.json();
  if (!answer.success) throw answer;
  sessionStorage.setItem("flowgate.token", answer.data.token);
  sessionStorage.setItem("flowgate.user", username);
  start();
}

async function signOut() {
  try {
    await state.flow?.call("DELETE", "auth/session", { objectid: "current", waitForConnection: false });
  } catch {}
  state.flow?.close();
  sessionStorage.clear();
  location.reload();
}

function showError(error) {
  const box = $("#error");
  if (!error) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.textContent = `${error.message ?? "Error"}${error.errorcode ? ` (${error.errorcode})` : ""}${error.errorid ? ` — errorid ${error.errorid}` : ""}`;
}

// Endpoints

async function start() {
  const token = sessionStorage.getItem("flowgate.token");
  if (!token) {
    $("#sign-in").hidden = false;
    return;
  }
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  $("#who").textContent = sessionStorage.getItem("flowgate.user") ?? "";
  state.flow = connect("/ws", { token });
  state.flow.on("close", (event) => {
    if (event.code === 4001) {
      sessionStorage.clear();
      location.reload();
    }
  });
  try {
    const listed = await state.flow.call("LIST", "system/endpoints");
    for (const endpoint of listed.data) state.endpoints.set(endpoint.namespace, endpoint);
    renderEndpoints();
    // Providers come and go: their presence follows system/endpoints' events.
    state.flow.watch("system/endpoints").on("*", (event) => {
      if (event.event === "deleted") state.endpoints.delete(event.data.namespace);
      else if (event.data) state.endpoints.set(event.data.namespace, event.data);
      renderEndpoints();
    });
  } catch (error) {
    if (error.errorcode === "UNAUTHENTICATED") return signOut();
    showError(error);
  }
}

function renderEndpoints() {
  const list = $("#endpoints");
  list.replaceChildren();
  for (const endpoint of [...state.endpoints.values()].sort((a, b) => a.namespace.localeCompare(b.namespace))) {
    const item = document.createElement("li");
    item.textContent = endpoint.namespace;
    item.dataset.namespace = endpoint.namespace;
    item.className = endpoint.kind;
    if (endpoint.namespace === state.current?.namespace) item.classList.add("selected");
    if (endpoint.kind === "provider") {
      const presence = document.createElement("span");
      presence.className = "presence";
      presence.textContent = endpoint.served ? `${endpoint.providers} provider${endpoint.providers === 1 ? "" : "s"}` : "no provider";
      item.append(presence);
    }
    if (endpoint.kind === "collection") item.addEventListener("click", () => open(endpoint.namespace));
    list.append(item);
  }
}

// A collection's table

function open(namespace) {
  state.current = state.endpoints.get(namespace);
  state.schema = state.current.schema ?? {};
  state.pageCursor = undefined;
  $("#search").value = "";
  $("#collection").hidden = false;
  $("#title").textContent = state.current.title || namespace;
  closeEditor();
  renderEndpoints();
  state.watch?.close();
  // Any change reloads the page on screen, so paging and search stay the server's.
  state.watch = state.flow.watch(namespace);
  state.watch.on("*", () => {
    clearTimeout(state.reload);
    state.reload = setTimeout(load, 50);
  });
  load();
}

function columns() {
  const properties = resolve(state.schema).properties ?? {};
  const scalar = Object.entries(properties).filter(([, schema]) => ["string", "number", "integer", "boolean"].includes(type(resolve(schema))) || resolve(schema).enum);
  return ["id", ...scalar.slice(0, 6).map(([name]) => name)];
}

async function load() {
  const namespace = state.current.namespace;
  const parameters = { limit: PAGE };
  const search = $("#search").value.trim();
  if (search) parameters.search = search;
  if (state.pageCursor) parameters.cursor = state.pageCursor;
  try {
    const page = await state.flow.call("LIST", namespace, { parameters });
    if (namespace !== state.current.namespace) return;
    state.cursor = page.paging?.next;
    $("#next").disabled = !state.cursor;
    $("#total").textContent = page.paging?.total !== undefined ? `${page.paging.total} in all` : "";
    const names = columns();
    const head = document.createElement("tr");
    for (const name of names) head.append(Object.assign(document.createElement("th"), { textContent: name }));
    $("#table thead").replaceChildren(head);
    $("#table tbody").replaceChildren(
      ...page.data.map((object) => {
        const row = document.createElement("tr");
        row.dataset.id = object.id;
        for (const name of names) row.append(Object.assign(document.createElement("td"), { textContent: text(object[name]) }));
        row.addEventListener("click", () => edit(object));
        return row;
      }),
    );
  } catch (error) {
    showError(error);
  }
}

function text(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// Forms from the schema

function resolve(schema) {
  if (schema && typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    let target = state.schema;
    for (const part of schema.$ref.slice(2).split("/")) target = target?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    return target ?? {};
  }
  return schema ?? {};
}

function type(schema) {
  const types = Array.isArray(schema.type) ? schema.type.filter((t) => t !== "null") : [schema.type];
  return types[0];
}

function fieldsFor(schema, object, path, depth) {
  const container = document.createDocumentFragment();
  const required = new Set(schema.required ?? []);
  for (const [name, raw] of Object.entries(schema.properties ?? {})) {
    const property = resolve(raw);
    const pointer = `${path}/${name}`;
    const value = object?.[name];
    if (type(property) === "object" && property.properties && depth < 2) {
      const set = document.createElement("fieldset");
      set.dataset.pointer = pointer;
      set.append(Object.assign(document.createElement("legend"), { textContent: name }));
      set.append(fieldsFor(property, value, pointer, depth + 1));
      set.append(problemSlot(pointer));
      container.append(set);
      continue;
    }
    const label = document.createElement("label");
    label.append(Object.assign(document.createElement("span"), { className: "name", textContent: name + (required.has(name) ? " *" : "") }));
    let input;
    if (property.enum) {
      input = document.createElement("select");
      input.append(new Option("", ""));
      for (const option of property.enum) input.append(new Option(String(option), JSON.stringify(option)));
      input.value = value === undefined ? "" : JSON.stringify(value);
      input.dataset.kind = "enum";
    } else if (type(property) === "boolean") {
      input = Object.assign(document.createElement("input"), { type: "checkbox", checked: value === true });
      input.dataset.kind = "boolean";
    } else if (type(property) === "integer" || type(property) === "number") {
      input = Object.assign(document.createElement("input"), { type: "number", value: value ?? "" });
      if (property.minimum !== undefined) input.min = property.minimum;
      if (property.maximum !== undefined) input.max = property.maximum;
      input.step = type(property) === "integer" ? "1" : "any";
      input.dataset.kind = type(property);
    } else if (type(property) === "string" || type(property) === undefined && !property.properties && !property.items) {
      input = Object.assign(document.createElement("input"), { value: value ?? "" });
      if (property.maxLength !== undefined) input.maxLength = property.maxLength;
      input.dataset.kind = "string";
    } else {
      input = Object.assign(document.createElement("textarea"), { value: value === undefined ? "" : JSON.stringify(value) });
      input.placeholder = "JSON";
      input.dataset.kind = "json";
    }
    input.name = pointer;
    input.required = required.has(name);
    label.append(input, problemSlot(pointer));
    container.append(label);
  }
  return container;
}

function problemSlot(pointer) {
  const slot = document.createElement("span");
  slot.className = "problem";
  slot.dataset.problem = pointer;
  return slot;
}

/** The form's values as an object; empty fields are left out (null on update, to remove them). */
function collect(clearEmpty) {
  const data = {};
  for (const input of $("#fields").querySelectorAll("[name]")) {
    const parts = input.name.split("/").slice(1);
    let value;
    switch (input.dataset.kind) {
      case "enum": value = input.value === "" ? undefined : JSON.parse(input.value); break;
      case "boolean": value = input.checked; break;
      case "integer": case "number": value = input.value === "" ? undefined : Number(input.value); break;
      case "json":
        try {
          value = input.value.trim() === "" ? undefined : JSON.parse(input.value);
        } catch {
          value = input.value;
        }
        break;
      default: value = input.value === "" ? undefined : input.value;
    }
    if (value === undefined && !clearEmpty) continue;
    let target = data;
    for (const part of parts.slice(0, -1)) target = target[part] ??= {};
    target[parts.at(-1)] = value === undefined ? null : value;
  }
  return data;
}

function edit(object) {
  state.editing = object ?? null;
  $("#editor").hidden = false;
  $("#editor-title").textContent = object ? `Edit ${object.id}` : `New ${state.current.namespace}`;
  $("#delete").hidden = !object;
  $("#conflict").hidden = true;
  const schema = resolve(state.schema);
  const fields = fieldsFor(schema, object, "", 1);
  if (!object && !(schema.properties ?? {}).id) {
    const label = document.createElement("label");
    label.append(Object.assign(document.createElement("span"), { className: "name", textContent: "id" }));
    const input = Object.assign(document.createElement("input"), { name: "/id", placeholder: "(generated)" });
    input.dataset.kind = "string";
    label.append(input, problemSlot("/id"));
    fields.prepend(label);
  }
  $("#fields").replaceChildren(fields);
}

function closeEditor() {
  state.editing = null;
  $("#editor").hidden = true;
}

function showProblems(error) {
  for (const slot of document.querySelectorAll("[data-problem]")) slot.textContent = "";
  const problems = error?.data?.errors ?? [];
  for (const problem of problems) {
    // The deepest field the path names; a problem of the whole object goes to the first field.
    let pointer = problem.path;
    let slot = document.querySelector(`[data-problem="${CSS.escape(pointer)}"]`);
    while (!slot && pointer.includes("/")) {
      pointer = pointer.slice(0, pointer.lastIndexOf("/"));
      slot = document.querySelector(`[data-problem="${CSS.escape(pointer)}"]`);
    }
    slot ??= document.querySelector("[data-problem]");
    if (slot) slot.textContent = problem.message;
  }
}

async function save(event) {
  event.preventDefault();
  showError(null);
  showProblems(null);
  const namespace = state.current.namespace;
  try {
    if (state.editing) {
      const data = collect(true);
      const answer = await state.flow.call("UPDATE", namespace, { objectid: state.editing.id, parameters: { rev: state.editing.rev }, data });
      state.editing = answer.data;
    } else {
      await state.flow.call("CREATE", namespace, { data: collect(false) });
    }
    closeEditor();
  } catch (error) {
    fail(error);
  }
}

async function remove() {
  showError(null);
  try {
    await state.flow.call("DELETE", state.current.namespace, { objectid: state.editing.id, parameters: { rev: state.editing.rev } });
    closeEditor();
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  showError(error);
  showProblems(error);
  if (error.errorcode === "CONFLICT" && error.data) {
    // Someone changed it meanwhile: show theirs; saving again overwrites it on purpose.
    $("#conflict").hidden = false;
    $("#conflict").textContent = "The object changed meanwhile. Now:\n" + JSON.stringify(error.data, null, 2);
    state.editing = error.data;
  }
}

// Wiring

$("#sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  showError(null);
  try {
    await signIn(form.get("username"), form.get("password"));
  } catch (error) {
    showError(error);
  }
});
$("#sign-out").addEventListener("click", signOut);
$("#search").addEventListener("input", () => {
  state.pageCursor = undefined;
  clearTimeout(state.reload);
  state.reload = setTimeout(load, 200);
});
$("#first").addEventListener("click", () => {
  state.pageCursor = undefined;
  load();
});
$("#next").addEventListener("click", () => {
  if (!state.cursor) return;
  state.pageCursor = state.cursor;
  load();
});
$("#new").addEventListener("click", () => edit(null));
$("#editor").addEventListener("submit", save);
$("#delete").addEventListener("click", remove);
$("#cancel").addEventListener("click", closeEditor);
start();
