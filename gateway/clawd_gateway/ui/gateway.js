// The gateway protocol as the Control UI speaks it: challenge, connect, req/res, events,
// a tick watchdog and reconnect with backoff. No DOM here: the page listens to its events.

export const PROTOCOL_MIN = 3;
export const PROTOCOL_MAX = 4;
export const CLIENT_ID = "openclaw-control-ui";
export const CLIENT_MODE = "ui";
export const CLIENT_VERSION = "clawd-control-ui/1";
// Read for health/presence/nodes, pairing to approve devices, write + admin because approving a
// node that advertises commands (system.run and friends) needs them too.
export const OPERATOR_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.pairing"];

const CHALLENGE_TIMEOUT_MS = 6000;
const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30000;
const DEFAULT_TICK_MS = 30000;
const CLOSE_WATCHDOG = 4000;
const CLOSE_AUTH_CHANGED = 4001;

/** An error reply from the gateway, with its machine-readable parts kept. */
export class GatewayError extends Error {
  constructor(shape) {
    super((shape && shape.message) || "gateway error");
    this.name = "GatewayError";
    this.code = (shape && shape.code) || "UNAVAILABLE";
    this.details = (shape && shape.details) || {};
    this.retryAfterMs = shape && typeof shape.retryAfterMs === "number" ? shape.retryAfterMs : null;
  }
  get detailCode() {
    return typeof this.details.code === "string" ? this.details.code : null;
  }
}

function randomHex(bytes) {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf); // available outside secure contexts too, unlike randomUUID
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

function clientPlatform() {
  const uaData = navigator.userAgentData;
  const name = (uaData && uaData.platform) || navigator.platform || "";
  return name.trim() || "web";
}

/**
 * One logical connection to the gateway that survives socket drops.
 *
 * Events (CustomEvent.detail):
 *   phase      {phase, attempt}          connecting | challenge | authenticating | open
 *   hello      {hello}                   handshake accepted (hello-ok payload)
 *   refused    {error: GatewayError}     the gateway said no to connect; no automatic retry
 *   gwevent    {event, payload, seq}     a broadcast or targeted event after hello
 *   closed     {code, reason, willRetry, retryInMs, attempt}
 */
export class GatewayClient extends EventTarget {
  constructor({ url, credential, scopes = OPERATOR_SCOPES }) {
    super();
    this.url = url;
    this.credential = credential; // () => {kind, secret}: read fresh on every attempt
    this.scopes = scopes;
    this.instanceId = randomHex(16);
    this.running = false;
    this.hello = null;
    this.ws = null;
    this.attempt = 0;
    this.nextId = 0;
    this.pending = new Map();
    this.timers = { challenge: 0, retry: 0, watchdog: 0 };
    this.lastFrameAt = 0;
    this.refusal = null;
  }

  get connected() {
    return this.hello !== null && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.running = true;
    this.attempt = 0;
    this.#clearTimer("retry");
    this.#open();
  }

  stop() {
    this.running = false;
    this.#clearTimer("retry");
    this.#teardown(1000, "signed out");
  }

  /** Send a request; resolves with the payload, rejects with GatewayError or a connection error. */
  request(method, params = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.connected) return Promise.reject(new Error("not connected to the gateway"));
    const id = "ui-" + ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type: "req", id, method, params }));
    });
  }

  supports(method) {
    const methods = this.hello && this.hello.features && this.hello.features.methods;
    return !Array.isArray(methods) || methods.includes(method);
  }

  // -- internals -----------------------------------------------------------------------------

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #clearTimer(name) {
    if (this.timers[name]) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
      this.timers[name] = 0;
    }
  }

  #open() {
    this.attempt += 1;
    this.hello = null;
    this.refusal = null;
    this.#emit("phase", { phase: "connecting", attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.#onClose({ code: 1006, reason: String(err.message || err) });
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      this.#emit("phase", { phase: "challenge", attempt: this.attempt });
      this.timers.challenge = setTimeout(() => ws.close(CLOSE_WATCHDOG, "no connect.challenge"), CHALLENGE_TIMEOUT_MS);
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return; // not ours to interpret; the gateway only sends JSON
      }
      if (frame && typeof frame === "object") this.#onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (ws === this.ws) this.#onClose(ev);
    };
  }

  #onFrame(frame) {
    if (this.hello === null) {
      if (frame.type === "event" && frame.event === "connect.challenge") {
        this.#clearTimer("challenge");
        this.#sendConnect();
      } else if (frame.type === "res" && frame.id === "connect") {
        if (frame.ok) this.#onHello(frame.payload || {});
        else {
          this.refusal = new GatewayError(frame.error);
          this.#emit("refused", { error: this.refusal });
        }
      }
      return;
    }
    if (frame.type === "res") {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.ok) waiter.resolve(frame.payload);
      else waiter.reject(new GatewayError(frame.error));
    } else if (frame.type === "event" && typeof frame.event === "string") {
      this.#emit("gwevent", { event: frame.event, payload: frame.payload, seq: frame.seq });
    }
  }

  #sendConnect() {
    this.#emit("phase", { phase: "authenticating", attempt: this.attempt });
    const { kind, secret } = this.credential() || {};
    const params = {
      minProtocol: PROTOCOL_MIN,
      maxProtocol: PROTOCOL_MAX,
      client: {
        id: CLIENT_ID,
        displayName: "clawd Control UI",
        version: CLIENT_VERSION,
        platform: clientPlatform(),
        mode: CLIENT_MODE,
        instanceId: this.instanceId,
      },
      role: "operator",
      scopes: this.scopes,
      locale: navigator.language || "en",
      userAgent: navigator.userAgent,
    };
    if (secret) params.auth = { [kind === "password" ? "password" : "token"]: secret };
    this.ws.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params }));
  }

  #onHello(hello) {
    this.hello = hello;
    this.attempt = 0;
    const policy = hello.policy || {};
    const tickMs = Number(policy.tickIntervalMs) > 0 ? Number(policy.tickIntervalMs) : DEFAULT_TICK_MS;
    // Silence for two tick intervals means a dead path (sleeping laptop, dropped NAT entry).
    this.timers.watchdog = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * tickMs && this.ws) this.ws.close(CLOSE_WATCHDOG, "tick timeout");
    }, Math.min(tickMs, 5000));
    this.#emit("phase", { phase: "open", attempt: 0 });
    this.#emit("hello", { hello });
  }

  #teardown(code, reason) {
    this.#clearTimer("challenge");
    this.#clearTimer("watchdog");
    const ws = this.ws;
    this.ws = null;
    this.hello = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(code, reason);
      } catch {
        /* already closing */
      }
    }
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error("connection to the gateway closed"));
      this.pending.delete(id);
    }
  }

  #onClose(ev) {
    const refusal = this.refusal;
    this.#teardown(1000, "");
    // A refused connect, a rotated secret or a policy close will not heal by retrying the same
    // credential: stop and let the user act. Drops, restarts and policy closes retry with backoff.
    if (refusal !== null || ev.code === CLOSE_AUTH_CHANGED) this.running = false;
    let retryInMs = null;
    if (this.running) {
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.max(0, this.attempt - 1));
      retryInMs = Math.round(base * (0.8 + Math.random() * 0.4));
      this.timers.retry = setTimeout(() => {
        this.timers.retry = 0;
        if (this.running) this.#open();
      }, retryInMs);
    }
    this.#emit("closed", {
      code: ev.code,
      reason: ev.reason || "",
      refused: refusal,
      willRetry: retryInMs !== null,
      retryInMs,
      attempt: this.attempt,
    });
  }
}
