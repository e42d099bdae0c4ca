// zabby web console: tree browser/editor, live metrics, ensemble view.
// Plain JS, no dependencies; talks to /api/console/* (JSON).
"use strict";

const API = "/api/console";
const $ = (id) => document.getElementById(id);
const state = { auth: sessionStorage.getItem("zabby.auth") || "", node: null, view: "text" };

// ------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (kind ? " " + kind : "");
}

async function api(method, path, body) {
  const headers = { "X-Zabby-Console": "1" };
  if (state.auth) headers["X-Zabby-Auth"] = state.auth;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(API + path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error("the console's server did not answer: " + e.message);
  }
  let data = {};
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error(data.message || `HTTP ${resp.status}`);
    err.code = data.error;
    err.status = resp.status;
    throw err;
  }
  return data;
}

const q = (params) => "?" + new URLSearchParams(params).toString();
const parentOf = (p) => p.slice(0, p.lastIndexOf("/")) || "/";
const joinPath = (parent, name) => (parent === "/" ? "" : parent) + "/" + name;

// ----------------------------------------------------------------- identity
function showIdentity() {
  $("identity-current").textContent = state.auth ? "digest " + state.auth.split(":")[0] : "anonymous";
}

$("identity-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("identity-user").value.trim(), pass = $("identity-pass").value;
  if (!user) { say("give a user name (digest user:password)", "error"); return; }
  state.auth = user + ":" + pass;
  sessionStorage.setItem("zabby.auth", state.auth);
  $("identity-pass").value = "";
  showIdentity();
  say("now acting as digest user " + user, "ok");
  await reloadTree();
});

$("identity-clear").addEventListener("click", async () => {
  state.auth = "";
  sessionStorage.removeItem("zabby.auth");
  showIdentity();
  say("now acting anonymously", "ok");
  await reloadTree();
});

// --------------------------------------------------------------------- tabs
const pollers = {};
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === tab.dataset.panel);
    if (tab.dataset.panel === "panel-ensemble") refreshEnsemble();
    if (tab.dataset.panel === "panel-metrics") pollMetrics();
  });
}

// --------------------------------------------------------------------- tree
function nodeItem(child) {
  const li = el("li", { class: "node", dataset: { path: child.path } });
  const hasKids = child.numChildren === undefined || child.numChildren > 0;
  const toggle = el("span", { class: "toggle" }, hasKids ? "▸" : "");
  const row = el("div", { class: "row" }, toggle, el("span", { class: "name" }, child.name),
    child.numChildren ? el("span", { class: "count" }, String(child.numChildren)) : null,
    child.ephemeral ? el("span", { class: "eph" }, "ephemeral") : null);
  li.append(row);
  toggle.addEventListener("click", (ev) => { ev.stopPropagation(); toggleNode(li); });
  row.addEventListener("click", () => selectNode(child.path));
  row.addEventListener("dblclick", () => toggleNode(li));
  return li;
}

async function loadChildren(li, path) {
  const data = await api("GET", "/children" + q({ path }));
  let ul = li.querySelector(":scope > ul");
  if (!ul) { ul = el("ul"); li.append(ul); }
  ul.replaceChildren(...data.children.map(nodeItem));
  li.classList.add("open");
  const t = li.querySelector(":scope > .row > .toggle");
  if (t) t.textContent = data.children.length ? "▾" : "";
  const row = li.querySelector(":scope > .row");
  let count = row.querySelector(".count");
  if (li.dataset.path !== "/") {  // the count as of now, not as of the parent's listing
    if (!count && data.children.length) { count = el("span", { class: "count" }); row.querySelector(".name").after(count); }
    if (count) count.textContent = data.children.length ? String(data.children.length) : "";
  }
  return data;
}

async function toggleNode(li) {
  const ul = li.querySelector(":scope > ul");
  if (li.classList.contains("open")) {
    li.classList.remove("open");
    if (ul) ul.remove();
    const t = li.querySelector(":scope > .row > .toggle");
    if (t && t.textContent) t.textContent = "▸";
    return;
  }
  try { await loadChildren(li, li.dataset.path); }
  catch (e) { say(e.message, "error"); }
}

function findItem(path) {
  return document.querySelector(`#tree li.node[data-path="${CSS.escape(path)}"]`);
}

// open the tree down to `path` (each ancestor's children loaded on the way)
async function reveal(path) {
  const parts = path.split("/").filter(Boolean);
  let cur = "/";
  for (let i = 0; i < parts.length; i++) {
    const li = findItem(cur);
    if (li && !li.classList.contains("open")) await loadChildren(li, cur);
    cur = joinPath(cur, parts[i]);
  }
}

async function reloadTree() {
  const tree = $("tree");
  const openPaths = [...tree.querySelectorAll("li.node.open")].map((li) => li.dataset.path);
  const root = nodeItem({ name: "/", path: "/" });
  tree.replaceChildren(root);
  try {
    await loadChildren(root, "/");
    for (const p of openPaths) {
      const li = findItem(p);
      if (li && !li.classList.contains("open")) {
        try { await loadChildren(li, p); } catch (e) { /* gone or not readable now */ }
      }
    }
  } catch (e) { say(e.message, "error"); }
  if (state.node) await selectNode(state.node.path, true);
}

// ------------------------------------------------------------------- detail
function hexdump(b64) {
  const bin = atob(b64);
  const lines = [];
  for (let off = 0; off < bin.length; off += 16) {
    const chunk = bin.slice(off, off + 16);
    const hex = [...chunk].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
    const asc = [...chunk].map((c) => (c >= " " && c <= "~" ? c : ".")).join("");
    lines.push(off.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + asc);
  }
  return lines.join("\n") || "(empty)";
}

function renderData() {
  const n = state.node;
  if (!n) return;
  const d = n.data;
  let text;
  if (state.view === "json") text = d.json != null ? d.json : "(not JSON)";
  else if (state.view === "hex") text = hexdump(d.base64);
  else text = d.text != null ? d.text : "(binary data: " + d.size + " bytes; see Hex)";
  if (state.view === "text" && d.size === 0) text = "(empty)";
  $("data-view").textContent = text;
  for (const b of document.querySelectorAll(".view")) b.classList.toggle("active", b.dataset.view === state.view);
}

const fmtTime = (ms) => (ms ? new Date(ms).toISOString() : "0");
const fmtZxid = (z) => "0x" + Number(z).toString(16);

function renderStat(s) {
  const rows = [
    ["czxid", fmtZxid(s.czxid)], ["mzxid", fmtZxid(s.mzxid)], ["pzxid", fmtZxid(s.pzxid)],
    ["ctime", fmtTime(s.ctime)], ["mtime", fmtTime(s.mtime)],
    ["version", s.version], ["cversion", s.cversion], ["aversion", s.aversion],
    ["ephemeralOwner", s.ephemeralOwner ? "0x" + BigInt.asUintN(64, BigInt(s.ephemeralOwner)).toString(16) : "0x0"],
    ["dataLength", s.dataLength], ["numChildren", s.numChildren],
  ];
  $("stat-table").replaceChildren(...rows.map(([k, v]) =>
    el("tr", { dataset: { key: k } }, el("td", {}, k), el("td", {}, String(v)))));
}

function renderAcl(node) {
  const t = $("acl-table");
  if (!node.acl) {
    t.replaceChildren(el("tr", {}, el("td", {}, node.aclError || "ACL not readable")));
    return;
  }
  t.replaceChildren(el("tr", {}, el("th", {}, "scheme"), el("th", {}, "id"), el("th", {}, "perms")),
    ...node.acl.map((a) => el("tr", {}, el("td", {}, a.scheme), el("td", {}, a.id), el("td", {}, a.permsText))));
}

async function selectNode(path, quiet) {
  for (const li of document.querySelectorAll("#tree li.node.selected")) li.classList.remove("selected");
  const li = findItem(path);
  if (li) li.classList.add("selected");
  let node;
  try {
    node = await api("GET", "/node" + q({ path }));
  } catch (e) {
    if (!quiet) say(e.message, "error");
    if (e.code === "NONODE") { state.node = null; $("detail-body").classList.add("hidden"); $("detail-empty").classList.remove("hidden"); }
    return;
  }
  state.node = node;
  if (!quiet) say("");
  if (state.view === "text" && node.data.json != null && node.data.size) state.view = "json";
  $("detail-empty").classList.add("hidden");
  $("detail-body").classList.remove("hidden");
  $("detail-path").textContent = node.path;
  $("edit-box").classList.add("hidden");
  renderData();
  renderStat(node.stat);
  renderAcl(node);
  $("delete-button").disabled = node.path === "/" || node.path === "/zookeeper" || node.path.startsWith("/zookeeper/");
}

for (const b of document.querySelectorAll(".view")) {
  b.addEventListener("click", () => { state.view = b.dataset.view; renderData(); });
}
$("refresh-button").addEventListener("click", () => state.node && selectNode(state.node.path));

// --------------------------------------------------------------------- edit
$("edit-button").addEventListener("click", () => {
  const n = state.node;
  if (!n) return;
  // binary data (or the hex view) is edited as hex digits, anything else as text
  state.editEncoding = n.data.text == null || state.view === "hex" ? "hex" : "text";
  $("edit-area").value = state.editEncoding === "hex"
    ? [...atob(n.data.base64)].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ")
    : n.data.text;
  $("edit-version").textContent = (state.editEncoding === "hex" ? "hex bytes; " : "") +
    "saving checks version " + n.stat.version;
  $("edit-box").classList.remove("hidden");
  $("edit-area").focus();
});
$("edit-cancel").addEventListener("click", () => $("edit-box").classList.add("hidden"));
$("edit-save").addEventListener("click", async () => {
  const n = state.node;
  try {
    const r = await api("PUT", "/node", { path: n.path, data: $("edit-area").value,
                                          encoding: state.editEncoding, version: n.stat.version });
    say(`saved ${n.path} (version ${r.stat.version})`, "ok");
    await selectNode(n.path, true);
  } catch (e) { say(e.message, "error"); }
});

// ------------------------------------------------------------------- create
$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const n = state.node;
  const name = $("create-name").value.trim();
  if (!n || !name) { say("give the new node a name", "error"); return; }
  if (name.includes("/")) { say("a name cannot contain '/'", "error"); return; }
  const body = { path: joinPath(n.path, name), data: $("create-data").value,
                 sequential: $("create-sequential").checked };
  if ($("create-private").checked) body.acl = [{ scheme: "auth", id: "", perms: "cdrwa" }];
  try {
    const r = await api("POST", "/node", body);
    say("created " + r.path, "ok");
    $("create-name").value = ""; $("create-data").value = "";
    const li = findItem(n.path);
    if (li) await loadChildren(li, n.path);
    await selectNode(n.path, true);
  } catch (e) { say(e.message, "error"); }
});

// ------------------------------------------------------------------- delete
function confirmDialog(text, okLabel) {
  const d = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel || "Delete";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}

$("delete-button").addEventListener("click", async () => {
  const n = state.node;
  if (!n) return;
  let count;
  try {
    count = (await api("GET", "/count" + q({ path: n.path }))).count;
  } catch (e) { say(e.message, "error"); return; }
  const text = count > 1
    ? `Delete ${n.path} and everything under it: ${count} nodes in all (${count - 1} descendants)?`
    : `Delete ${n.path}?`;
  if (!(await confirmDialog(text, count > 1 ? `Delete ${count} nodes` : "Delete"))) { say("nothing deleted"); return; }
  try {
    const params = { path: n.path, version: n.stat.version };
    if (count > 1) Object.assign(params, { recursive: "1", expect: String(count) });
    const r = await api("DELETE", "/node" + q(params));
    say(`deleted ${r.deleted} node${r.deleted === 1 ? "" : "s"} (${n.path})`, "ok");
    const parent = parentOf(n.path);
    state.node = null;
    $("detail-body").classList.add("hidden");
    $("detail-empty").classList.remove("hidden");
    const li = findItem(parent);
    if (li) await loadChildren(li, parent);
  } catch (e) { say(e.message, "error"); }
});

// ------------------------------------------------------------------- search
$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const prefix = $("search-input").value.trim();
  const box = $("search-results");
  if (!prefix) { box.classList.add("hidden"); return; }
  try {
    const r = await api("GET", "/search" + q({ prefix }));
    box.replaceChildren(...r.paths.map((p) => el("li", { dataset: { path: p }, onclick: async () => {
      try { await reveal(p); } catch (e) { /* shown on select */ }
      await selectNode(p);
    } }, p)));
    if (!r.paths.length) box.append(el("li", { class: "muted" }, "no node starts with " + prefix));
    if (r.truncated) box.append(el("li", { class: "muted" }, "… more (narrow the prefix)"));
    box.classList.remove("hidden");
  } catch (e) { say(e.message, "error"); }
});

// ------------------------------------------------------------------ metrics
const samples = { t: [], recv: [], sent: [], avg: [], max: [], sessions: [], conns: [] };
let last = null;
const HISTORY = 120;

function push(key, v) { samples[key].push(v); if (samples[key].length > HISTORY) samples[key].shift(); }

function drawChart(canvas, series, unit) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 48, B = 18, T = 8, R = 8;
  ctx.clearRect(0, 0, W, H);
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  max = max <= 0 ? 1 : max * 1.15;
  ctx.strokeStyle = "#d8dce4"; ctx.fillStyle = "#6b7385"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    const v = (max * i) / 4;
    ctx.fillText(v >= 100 ? v.toFixed(0) : v.toFixed(1), 4, y + 4);
  }
  ctx.fillText(unit, 4, H - 4);
  const n = HISTORY;
  let lx = W - R - 4;
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = L + ((W - L - R) * (i + n - s.values.length)) / (n - 1);
      const y = T + (H - T - B) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    const cur = s.values.length ? s.values[s.values.length - 1] : 0;
    const label = `${s.label} ${cur >= 100 ? cur.toFixed(0) : cur.toFixed(2)}`;
    ctx.fillStyle = s.color;
    const w = ctx.measureText(label).width;
    lx -= w; ctx.fillText(label, lx, H - 4); lx -= 12;
  });
}

async function pollMetrics() {
  if (pollers.metrics) return;
  const tick = async () => {
    if (!$("panel-metrics").classList.contains("active")) { pollers.metrics = null; return; }
    try {
      const r = await api("GET", "/overview");
      const v = r.values;
      if (last) {
        const dt = Math.max(r.time - last.time, 0.001);
        push("recv", Math.max(0, (v.packets_received - last.values.packets_received) / dt));
        push("sent", Math.max(0, (v.packets_sent - last.values.packets_sent) / dt));
      }
      push("avg", Number(v.avg_latency) || 0);
      push("max", Number(v.max_latency) || 0);
      push("sessions", Number(v.global_sessions) || 0);
      push("conns", Number(v.num_alive_connections) || 0);
      last = r;
      drawChart($("chart-throughput"), [{ label: "received/s", color: "#2f6fde", values: samples.recv },
                                        { label: "sent/s", color: "#23864b", values: samples.sent }], "pkt/s");
      drawChart($("chart-latency"), [{ label: "avg", color: "#2f6fde", values: samples.avg },
                                     { label: "max", color: "#c0392b", values: samples.max }], "ms");
      drawChart($("chart-sessions"), [{ label: "sessions", color: "#8e44ad", values: samples.sessions },
                                      { label: "connections", color: "#d68910", values: samples.conns }], "count");
      $("metric-values").replaceChildren(...Object.entries(v).map(([k, x]) =>
        el("tr", { dataset: { key: k } }, el("td", {}, k), el("td", {}, String(x)))));
    } catch (e) { say(e.message, "error"); }
    pollers.metrics = setTimeout(tick, 1000);
  };
  pollers.metrics = setTimeout(tick, 0);
}

// ----------------------------------------------------------------- ensemble
async function refreshEnsemble() {
  clearTimeout(pollers.ensemble);
  if (!$("panel-ensemble").classList.contains("active")) return;
  try {
    const r = await api("GET", "/ensemble");
    const leaders = r.members.filter((m) => m.mode === "leader");
    $("ensemble-summary").textContent = r.standalone
      ? "Standalone server (no ensemble)."
      : leaders.length === 1 ? `server.${leaders[0].id} leads; ${r.members.length} members.`
      : leaders.length ? "More than one member says it leads (an election is settling)." : "No leader right now.";
    $("ensemble-table").tBodies[0].replaceChildren(...r.members.map((m) => el("tr", {
      class: (m.mode === "leader" ? "leader" : "") + (m.error ? " down" : ""), dataset: { id: String(m.id) } },
      el("td", {}, m.id == null ? "-" : "server." + m.id + (m.self ? " (this one)" : "")),
      el("td", {}, `${m.host}:${m.port}`),
      el("td", {}, m.role || ""),
      el("td", { class: "mode" }, m.mode || "unreachable"),
      el("td", { class: "zxid" }, m.zxidHex || ""),
      el("td", { class: "lag" }, m.lag == null ? (m.lagNote || "") : String(m.lag)),
      el("td", {}, m.connections == null ? "" : String(m.connections)),
      el("td", {}, m.error || ""))));
  } catch (e) { say(e.message, "error"); }
  pollers.ensemble = setTimeout(refreshEnsemble, 2000);
}

// --------------------------------------------------------------------- start
showIdentity();
reloadTree();
