// Minimal Control UI: connects over the gateway protocol from the page's own origin.
"use strict";
(function () {
  const base = document.documentElement.dataset.basePath || "";
  const $ = (id) => document.getElementById(id);
  let ws = null;
  let counter = 0;
  const pending = new Map();

  function setState(text, cls) { const el = $("state"); el.textContent = text; el.className = cls || ""; }

  function call(method, params) {
    const id = String(++counter);
    ws.send(JSON.stringify({ type: "req", id, method, params: params || {} }));
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
  }

  function renderPresence(list) {
    const body = $("presence").querySelector("tbody");
    body.textContent = "";
    for (const p of list || []) {
      const tr = document.createElement("tr");
      for (const v of [p.host, p.mode, p.ip, p.version]) {
        const td = document.createElement("td"); td.textContent = v == null ? "" : String(v); tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  async function refresh() {
    try {
      $("health").textContent = JSON.stringify(await call("health"), null, 2);
      renderPresence(await call("system-presence"));
    } catch (err) { $("health").textContent = String(err.message || err); }
  }

  function connect() {
    const kind = sessionStorage.getItem("clawd.kind") || "token";
    const secret = sessionStorage.getItem("clawd.secret") || "";
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + base + "/");
    setState("connecting…");
    ws.onmessage = (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.type === "event" && frame.event === "connect.challenge") {
        const auth = {}; if (secret) auth[kind] = secret;
        ws.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params: {
          minProtocol: 3, maxProtocol: 4,
          client: { id: "openclaw-control-ui", version: "clawd-ui", platform: navigator.platform || "web", mode: "ui" },
          role: "operator", scopes: ["operator.read"], auth } }));
      } else if (frame.type === "res" && frame.id === "connect") {
        if (frame.ok) { setState("connected", "ok"); refresh(); }
        else { setState("refused", "bad"); $("health").textContent = frame.error.message; }
      } else if (frame.type === "res" && pending.has(frame.id)) {
        const p = pending.get(frame.id); pending.delete(frame.id);
        frame.ok ? p.resolve(frame.payload) : p.reject(new Error(frame.error.message));
      } else if (frame.type === "event" && frame.event === "presence") {
        renderPresence((frame.payload || {}).presence);
      }
    };
    ws.onclose = (ev) => setState("closed (" + ev.code + (ev.reason ? ": " + ev.reason : "") + ")", "bad");
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("clawd.kind", $("kind").value);
    sessionStorage.setItem("clawd.secret", $("secret").value);
    $("secret").value = "";
    if (ws) ws.close();
    connect();
  });
  if (sessionStorage.getItem("clawd.secret")) connect();
})();
