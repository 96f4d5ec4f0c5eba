// Rendering: gateway data in, DOM out. Text goes in through textContent only, never as markup,
// because node names, hosts and versions are chosen by whoever connects.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "–";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A <time> element: local clock time, with the relative age for the eye and ISO for machines. */
export function timeEl(ms, now = Date.now()) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) return document.createTextNode("–");
  const date = new Date(ms);
  const ago = now - ms;
  const label = ago >= 0 && ago < 86400000 ? `${date.toLocaleTimeString()} (${fmtDuration(ago)} ago)` : date.toLocaleString();
  return el("time", { datetime: date.toISOString(), title: date.toLocaleString(), text: label });
}

function str(value, fallback = "–") {
  if (value === null || value === undefined || value === "") return fallback;
  return String(value);
}

function tags(list, empty = "none") {
  if (!Array.isArray(list) || list.length === 0) return el("span", { class: "hint", text: empty });
  return el("span", { class: "tags" }, ...list.map((t) => el("span", { class: "tag", text: String(t) })));
}

function shortId(id) {
  const s = str(id, "");
  return s.length > 16 ? s.slice(0, 12) + "…" : s;
}

function fillTable(table, note, count, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  table.hidden = rows.length === 0;
  if (note) note.hidden = rows.length !== 0;
  if (count) count.textContent = String(rows.length);
}

export function renderHealth(dl, pre, health) {
  const h = health || {};
  const gw = h.gateway || {};
  const loop = h.eventLoop || {};
  const facts = [];
  const ok = h.ok === true && !loop.degraded;
  const statusText = h.ok === true ? (loop.degraded ? "degraded (event loop lag)" : "OK") : "not OK";
  facts.push(["Status", el("span", { class: ok ? "status-ok" : h.ok === true ? "status-warn" : "status-bad", text: statusText })]);
  if (gw.implementation || gw.version) facts.push(["Gateway", `${str(gw.implementation, "gateway")} ${str(gw.version, "")}`.trim()]);
  if (typeof gw.uptimeMs === "number") facts.push(["Uptime", fmtDuration(gw.uptimeMs)]);
  if (typeof gw.clients === "number") facts.push(["Clients", String(gw.clients)]);
  if (gw.authMode) facts.push(["Auth", String(gw.authMode)]);
  if (gw.bind) facts.push(["Bind", String(gw.bind)]);
  if (typeof loop.delayP99Ms === "number") {
    facts.push(["Event loop", `p99 lag ${loop.delayP99Ms} ms, max ${str(loop.delayMaxMs)} ms, CPU ${Math.round((loop.utilization || 0) * 100)}%`]);
  }
  if (Array.isArray(h.channelOrder)) facts.push(["Channels", h.channelOrder.length ? h.channelOrder.join(", ") : "none"]);
  if (Array.isArray(h.agents)) facts.push(["Agents", h.agents.map((a) => a.agentId).join(", ") || "none"]);
  facts.push(["Checked", timeEl(h.ts)]);
  dl.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  pre.textContent = JSON.stringify(h, null, 2);
}

export function renderPresence(table, count, entries) {
  const list = Array.isArray(entries) ? entries : [];
  const rows = list.map((p) =>
    el(
      "tr",
      { "data-mode": str(p.mode, "") },
      el("td", { text: str(p.host) }),
      el("td", { text: str(p.mode) }),
      el("td", { text: Array.isArray(p.roles) ? p.roles.join(", ") : "–" }),
      el("td", { class: "mono", text: str(p.ip) }),
      el("td", { text: str(p.version) }),
      el("td", { text: str(p.platform) }),
      el("td", {}, timeEl(p.since || p.ts)),
    ),
  );
  fillTable(table, null, count, rows);
}

function nodeStatus(n) {
  if (n.paired && n.connected) return ["paired · connected", "status-ok"];
  if (n.paired) return ["paired · offline", "status-warn"];
  if (n.connected) return ["connected · not paired", "status-bad"];
  return ["unknown", ""];
}

/** Merge node.list with node.pair.list's paired entries (a gateway may list offline ones only there). */
export function mergeNodes(listed, paired) {
  const byId = new Map();
  for (const n of Array.isArray(listed) ? listed : []) if (n && n.nodeId) byId.set(n.nodeId, { ...n });
  for (const p of Array.isArray(paired) ? paired : []) {
    if (!p || !p.nodeId) continue;
    const known = byId.get(p.nodeId);
    if (known) known.paired = true;
    else byId.set(p.nodeId, { ...p, paired: true, connected: false });
  }
  return [...byId.values()].sort(
    (a, b) => Number(!!b.connected) - Number(!!a.connected) || str(a.displayName || a.nodeId).localeCompare(str(b.displayName || b.nodeId)),
  );
}

export function renderNodes(table, note, count, nodes) {
  const rows = nodes.map((n) => {
    const [status, cls] = nodeStatus(n);
    const seen = n.connected ? n.connectedAtMs : n.lastConnectedAtMs || n.lastSeenAtMs || n.approvedAtMs;
    return el(
      "tr",
      { "data-node-id": n.nodeId, "data-connected": String(!!n.connected), "data-paired": String(!!n.paired) },
      el("td", { text: str(n.displayName, n.nodeId) }),
      el("td", { class: "mono", title: n.nodeId, text: shortId(n.nodeId) }),
      el("td", {}, el("span", { class: cls, text: status })),
      el("td", { text: [n.platform, n.version].filter(Boolean).join(" ") || "–" }),
      el("td", {}, tags(n.caps)),
      el("td", {}, tags(n.commands)),
      el("td", {}, timeEl(seen)),
    );
  });
  fillTable(table, note, count, rows);
}

/** Pending requests with Approve/Reject; `busy` holds requestIds with a decision in flight. */
export function renderPending(table, note, count, pending, { onApprove, onReject, busy }) {
  const list = Array.isArray(pending) ? pending : [];
  const rows = list.map((r) => {
    const name = str(r.displayName, r.nodeId);
    const inFlight = busy.has(r.requestId);
    const device = r.kind === "device";
    return el(
      "tr",
      { "data-request-id": r.requestId, "data-node-id": r.nodeId, "data-kind": device ? "device" : "node" },
      el("td", { text: name }),
      el("td", { class: "mono", title: r.nodeId, text: shortId(r.nodeId) }),
      el("td", { text: [r.platform, r.version].filter(Boolean).join(" ") || "–" }),
      el("td", { class: "mono", text: str(r.remoteIp) }),
      el("td", {}, timeEl(r.ts)),
      el("td", {}, device ? el("span", { class: "hint", text: "device identity first (its commands are asked for after it reconnects)" }) : tags(r.commands)),
      el("td", {}, tags(device ? [] : r.requiredApproveScopes, "operator.pairing")),
      el(
        "td",
        { class: "decision" },
        el("button", { type: "button", class: "approve", disabled: inFlight, "aria-label": `Approve ${name}`, text: "Approve", onclick: () => onApprove(r) }),
        el("button", { type: "button", class: "reject", disabled: inFlight, "aria-label": `Reject ${name}`, text: "Reject", onclick: () => onReject(r) }),
      ),
    );
  });
  fillTable(table, note, count, rows);
}
