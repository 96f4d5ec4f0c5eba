// Control UI controller: credential handling, connection status, and keeping the dashboard in
// step with the gateway (snapshot at hello, re-fetch on events). Protocol: gateway.js; DOM: view.js.
import { GatewayClient } from "./gateway.js";
import { mergeNodes, renderHealth, renderNodes, renderPending, renderPresence, timeEl } from "./view.js";

const STORE_KIND = "clawd.controlUi.authKind";
const STORE_SECRET = "clawd.controlUi.secret";
const $ = (id) => document.getElementById(id);
const basePath = document.documentElement.dataset.basePath || "";

const PHASE_TEXT = {
  connecting: "Connecting…",
  challenge: "Waiting for the gateway's connect.challenge…",
  authenticating: "Signing in…",
  open: "Connected",
};

// -- credential: this tab's sessionStorage, or memory if storage is blocked ---------------------

const memory = new Map();
const store = {
  get(key) {
    try {
      return sessionStorage.getItem(key);
    } catch {
      return memory.has(key) ? memory.get(key) : null;
    }
  },
  set(key, value) {
    try {
      sessionStorage.setItem(key, value);
    } catch {
      memory.set(key, value);
    }
  },
  remove(key) {
    memory.delete(key);
    try {
      sessionStorage.removeItem(key);
    } catch {
      /* storage blocked: memory already cleared */
    }
  },
};

function loadCredential() {
  return { kind: store.get(STORE_KIND) || "token", secret: store.get(STORE_SECRET) || "" };
}

const hasCredential = () => store.get(STORE_SECRET) !== null; // "" = signed in to an auth-less gateway

function forgetSecret() {
  store.remove(STORE_SECRET);
}

/** A token pasted into the address bar would sit in history and referrers: drop it, say so. */
function scrubUrlSecrets() {
  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const keys = ["token", "password", "auth"];
  if (!keys.some((k) => params.has(k) || hash.has(k))) return false;
  history.replaceState(null, "", location.pathname);
  return true;
}

// -- status, errors, announcements --------------------------------------------------------------

function setConnState(state, text) {
  const node = $("conn-state");
  node.dataset.state = state;
  node.textContent = text;
}

function showError(title, message, hint) {
  const box = $("error");
  const parts = [document.createElement("strong")];
  parts[0].textContent = title;
  for (const [cls, text] of [["detail message", message], ["detail", hint]]) {
    if (!text) continue;
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    parts.push(span);
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

function announce(text) {
  $("action-status").textContent = text;
}

// -- rate-limit countdown on the Connect button ---------------------------------------------------

let waitTimer = 0;
function blockConnectFor(ms) {
  const button = $("connect-button");
  const until = Date.now() + ms;
  clearInterval(waitTimer);
  const update = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(waitTimer);
      button.disabled = false;
      button.textContent = "Connect";
      return;
    }
    button.disabled = true;
    button.textContent = `Connect (wait ${left} s)`;
  };
  update();
  waitTimer = setInterval(update, 1000);
}

function describeRefusal(err) {
  const code = err.detailCode;
  const origin = location.origin;
  switch (code) {
    case "AUTH_TOKEN_MISMATCH":
      return "Check the token: it must equal the gateway's gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN on the gateway host).";
    case "AUTH_PASSWORD_MISMATCH":
      return "Check the password: it must equal the gateway's gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD).";
    case "AUTH_TOKEN_MISSING":
      return "This gateway uses token auth: choose “Gateway token” and paste the token.";
    case "AUTH_PASSWORD_MISSING":
      return "This gateway uses password auth: choose “Gateway password” and type the password.";
    case "DEVICE_IDENTITY_REQUIRED":
      return "This gateway requires a token or password.";
    case "AUTH_RATE_LIMITED": {
      const secs = Math.ceil((err.retryAfterMs || 60000) / 1000);
      return `Too many failed sign-ins from this address; the gateway locks it for a while. Try again in ${secs} s.`;
    }
    case "CONTROL_UI_ORIGIN_NOT_ALLOWED":
      return `This page was opened as ${origin}, which the gateway does not accept. Open the Control UI through loopback (an SSH tunnel to 127.0.0.1) or add "${origin}" to gateway.controlUi.allowedOrigins.`;
    case "PROTOCOL_MISMATCH":
      return "This page and the gateway speak different protocol versions; reload the page after upgrading.";
    default:
      return "";
  }
}

// -- dashboard state ----------------------------------------------------------------------------

const state = {
  busy: new Set(),
  pending: [],
  nodes: [],
  wanted: new Set(),
  refreshTimer: 0,
  generation: { health: 0, presence: 0, nodes: 0 },
};

function showSignedOut() {
  $("login-section").hidden = false;
  $("session-section").hidden = true;
  $("dashboard").hidden = true;
}

function showSignedIn(hello) {
  const { kind } = loadCredential();
  $("login-section").hidden = true;
  $("session-section").hidden = false;
  $("dashboard").hidden = false;
  $("session-kind").textContent = loadCredential().secret ? kind : "nothing (auth disabled)";
  const server = hello.server || {};
  $("session-server").textContent = server.version ? `Gateway version ${server.version}, protocol ${hello.protocol}.` : "";
  const scopes = hello.auth && Array.isArray(hello.auth.scopes) ? hello.auth.scopes : null;
  $("session-scopes").textContent = scopes ? scopes.join(", ") || "none" : "as requested";
}

function clearDashboard() {
  for (const id of ["health-summary", "health-raw"]) $(id).replaceChildren();
  for (const id of ["pending-table", "nodes-table", "presence-table"]) $(id).tBodies[0].replaceChildren();
  $("last-tick").replaceChildren("none yet");
  state.pending = [];
  state.nodes = [];
  state.busy.clear();
}

function renderPendingTable() {
  renderPending($("pending-table"), $("pairing-note"), $("pending-count"), state.pending, {
    onApprove: (r) => decide(r, true),
    onReject: (r) => decide(r, false),
    busy: state.busy,
  });
}

function sectionNote(id, text) {
  const note = $(id);
  note.textContent = text;
  note.hidden = false;
}

const refreshers = {
  async health() {
    const gen = ++state.generation.health;
    try {
      const health = await client.request("health");
      if (gen === state.generation.health) renderHealth($("health-summary"), $("health-raw"), health);
    } catch (err) {
      if (gen === state.generation.health) $("health-raw").textContent = `health failed: ${err.message}`;
    }
  },
  async presence() {
    const gen = ++state.generation.presence;
    try {
      const list = await client.request("system-presence");
      if (gen === state.generation.presence) renderPresence($("presence-table"), $("presence-count"), list);
    } catch (err) {
      if (gen === state.generation.presence) announce(`Presence failed: ${err.message}`);
    }
  },
  async nodes() {
    const gen = ++state.generation.nodes;
    const canList = client.supports("node.list");
    const canPair = client.supports("node.pair.list");
    const canPairDevices = client.supports("device.pair.list");
    const [listed, pairs, devices] = await Promise.allSettled([
      canList ? client.request("node.list") : Promise.resolve({ nodes: [] }),
      canPair ? client.request("node.pair.list") : Promise.resolve({ pending: [], paired: [] }),
      canPairDevices ? client.request("device.pair.list") : Promise.resolve({ pending: [] }),
    ]);
    if (gen !== state.generation.nodes) return;
    const pairOk = pairs.status === "fulfilled";
    const listOk = listed.status === "fulfilled";
    // A node connecting from elsewhere (not loopback) first needs its device identity approved;
    // once it reconnects, its commands come as a node request.
    const deviceRequests = devices.status === "fulfilled" && Array.isArray(devices.value.pending) ? devices.value.pending : [];
    const nodeRequests = pairOk && Array.isArray(pairs.value.pending) ? pairs.value.pending : [];
    state.pending = [
      ...deviceRequests.map((r) => ({ ...r, kind: "device", nodeId: r.deviceId })),
      ...nodeRequests.map((r) => ({ ...r, kind: "node" })),
    ].sort((a, b) => (Number(a.ts) || 0) - (Number(b.ts) || 0));
    state.nodes = mergeNodes(listOk ? listed.value.nodes : [], pairOk ? pairs.value.paired : []);
    renderPendingTable();
    renderNodes($("nodes-table"), $("nodes-note"), $("nodes-count"), state.nodes);
    if (!canPair) sectionNote("pairing-note", "This gateway does not offer node pairing.");
    else if (!pairOk) sectionNote("pairing-note", `Could not list pairing requests: ${pairs.reason.message}`);
    if (!listOk) sectionNote("nodes-note", `Could not list nodes: ${listed.reason.message}`);
  },
};

/** Coalesce bursts of events into one round of requests per part. */
function want(...parts) {
  for (const p of parts) state.wanted.add(p);
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    if (!client.connected) return;
    const todo = [...state.wanted];
    state.wanted.clear();
    for (const part of todo) refreshers[part]();
  }, 60);
}

async function decide(request, approve) {
  const name = request.displayName || request.nodeId;
  const verb = approve ? "Approve" : "Reject";
  state.busy.add(request.requestId);
  renderPendingTable();
  announce(`${verb === "Approve" ? "Approving" : "Rejecting"} ${name}…`);
  try {
    const kind = request.kind === "device" ? "device" : "node";
    await client.request(`${kind}.pair.${approve ? "approve" : "reject"}`, { requestId: request.requestId });
    announce(`${approve ? "Approved" : "Rejected"} ${name}.`);
  } catch (err) {
    announce(`Could not ${verb.toLowerCase()} ${name}: ${err.message}`);
  } finally {
    state.busy.delete(request.requestId);
    want("nodes");
  }
}

// -- the connection -----------------------------------------------------------------------------

const proto = location.protocol === "https:" ? "wss:" : "ws:";
const client = new GatewayClient({ url: `${proto}//${location.host}${basePath}/`, credential: loadCredential });

client.addEventListener("phase", ({ detail }) => {
  if (detail.phase === "open") return; // "hello" sets the final state
  const attempt = detail.attempt > 1 ? ` (attempt ${detail.attempt})` : "";
  setConnState("connecting", PHASE_TEXT[detail.phase] + attempt);
});

client.addEventListener("hello", ({ detail: { hello } }) => {
  clearError();
  setConnState("connected", "Connected");
  showSignedIn(hello);
  const snap = hello.snapshot || {};
  if (snap.health) renderHealth($("health-summary"), $("health-raw"), snap.health);
  if (snap.presence) renderPresence($("presence-table"), $("presence-count"), snap.presence);
  $("dashboard").removeAttribute("aria-busy");
  want("health", "presence", "nodes");
});

client.addEventListener("refused", ({ detail: { error } }) => {
  const code = error.detailCode || "";
  setConnState("refused", "Refused");
  showError("The gateway refused the connection:", error.message, describeRefusal(error));
  if (code.startsWith("AUTH_") || code === "DEVICE_IDENTITY_REQUIRED") forgetSecret();
  if (code === "AUTH_RATE_LIMITED") blockConnectFor(error.retryAfterMs || 60000);
  showSignedOut();
  $("auth-secret").focus();
});

client.addEventListener("closed", ({ detail }) => {
  if (detail.refused) return; // "refused" already explained it
  const why = `code ${detail.code}${detail.reason ? `: ${detail.reason}` : ""}`;
  if (detail.willRetry) {
    const secs = Math.max(1, Math.round(detail.retryInMs / 1000));
    setConnState("reconnecting", `Disconnected (${why}); retrying in ${secs} s`);
    $("dashboard").setAttribute("aria-busy", "true");
    if ($("dashboard").hidden) {
      // Never got in: say so loudly; once in, a drop only changes the status line.
      showError("Cannot reach the gateway.", `The WebSocket to ${location.host} closed (${why}).`, `Retrying in ${secs} s.`);
    }
    return;
  }
  setConnState("closed", `Disconnected (${why})`);
  if (detail.code === 4001) {
    forgetSecret();
    showError("The gateway's credential changed.", "Sign in again with the new token or password.", "");
  }
  showSignedOut();
});

client.addEventListener("gwevent", ({ detail: { event, payload } }) => {
  const data = payload || {};
  switch (event) {
    case "tick":
      $("last-tick").replaceChildren(timeEl(data.ts || Date.now()));
      want("health");
      break;
    case "presence":
      renderPresence($("presence-table"), $("presence-count"), Array.isArray(data) ? data : data.presence);
      want("nodes"); // nodes connecting or leaving show up in presence first
      break;
    case "health":
      renderHealth($("health-summary"), $("health-raw"), data);
      break;
    case "node.pair.requested":
      announce(`Pairing requested by ${data.displayName || data.nodeId || "a device"}.`);
      want("nodes");
      break;
    case "node.pair.resolved":
      announce(`Pairing of ${data.displayName || data.nodeId || "a device"} ${data.decision || "resolved"}.`);
      want("nodes");
      break;
    case "device.pair.requested":
      announce(`Device pairing requested by ${data.displayName || data.deviceId || "a device"}${data.remoteIp ? ` from ${data.remoteIp}` : ""}.`);
      want("nodes");
      break;
    case "device.pair.resolved":
      want("nodes");
      break;
    case "shutdown":
      announce(`The gateway is shutting down (${data.reason || "no reason given"}); will reconnect.`);
      break;
    default:
      if (event.startsWith("node.") && event !== "node.invoke.request") want("nodes");
  }
});

// -- wiring ---------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const kind = $("auth-kind").value === "password" ? "password" : "token";
  store.set(STORE_KIND, kind);
  store.set(STORE_SECRET, $("auth-secret").value);
  $("auth-secret").value = "";
  clearError();
  announce("");
  client.stop();
  client.start();
});

$("forget-button").addEventListener("click", () => {
  client.stop();
  store.remove(STORE_SECRET);
  store.remove(STORE_KIND);
  clearDashboard();
  clearError();
  showSignedOut();
  setConnState("idle", "Not connected");
  announce("Credential forgotten; this tab no longer holds it.");
  $("auth-secret").focus();
});

if (scrubUrlSecrets()) {
  showError(
    "A credential in the page address was ignored and removed from it.",
    "Addresses end up in history, logs and referrers; type the token or password in the form instead.",
    "",
  );
}
$("auth-kind").value = loadCredential().kind;
if (hasCredential()) client.start();
else $("auth-secret").focus();
