/**
 * pushhub.js — a small, dependency-free browser client for caddy-pushhub's
 * json protocol (see PROTOCOL.md).
 *
 *   import { PushHub } from "./pushhub.js";
 *   const hub = new PushHub("wss://push.example.com/ws", { uid: "alice" });
 *   hub.on("message", (m) => console.log(m.seq, m.from, m.group, m.data));
 *   await hub.send({ to: "bob", data: "hi" }); // → { delivered, dropped }
 *
 * The client logs in as soon as the socket opens, answers every request
 * (send, join, leave, ping) with a promise settled by the server's reply
 * carrying the same `id`, pings at the application level to notice dead
 * connections, and reconnects by itself with exponential backoff and jitter.
 * On reconnect it logs in with `since` set to the last sequence number it
 * saw (and its `epoch`), and joins again the groups it had joined. The
 * position is kept in sessionStorage per uid, so a reloaded page resumes
 * where it was too.
 *
 * @module pushhub
 */

/** Close codes after which reconnecting cannot help (see PROTOCOL.md). */
const FATAL_CLOSE_CODES = new Set([
  4001, // login refused
  4003, // the uid holds too many connections
  4005, // kicked through the push API
]);

/**
 * An error answered by the server (an `error` frame) or raised by the client.
 */
export class PushHubError extends Error {
  /**
   * @param {string} code    a stable code such as "bad_target" or "not_connected"
   * @param {string} message a human-readable explanation
   */
  constructor(code, message) {
    super(message);
    this.name = "PushHubError";
    /** @type {string} */
    this.code = code;
  }
}

/**
 * @typedef {object} PushHubOptions
 * @property {string} [uid]             log in as this uid (`auth first_message`)
 * @property {string} [token]           or with this token (`auth jwt`); wins over uid
 * @property {number} [pingInterval]    ms between application pings (default 25000; 0 turns them off)
 * @property {number} [requestTimeout]  ms to wait for a reply, pong included (default 10000)
 * @property {number} [minDelay]        first reconnect delay in ms (default 500)
 * @property {number} [maxDelay]        reconnect delay cap in ms (default 30000)
 * @property {boolean} [reconnect]      reconnect after an unexpected close (default true)
 * @property {Storage|null} [storage]   where the last position is kept across page reloads,
 *                                      per uid (default sessionStorage; null keeps it in memory only)
 */

/**
 * A connection to a push hub. It is an EventTarget; every event is a
 * CustomEvent whose `detail` is described below, and {@link PushHub#on}
 * hands that detail straight to the listener.
 *
 * - `state`   — `{ state }`: "connecting", "online", "reconnecting" or "closed"
 * - `welcome` — the welcome frame: `{ uid, conn_id, seq, epoch?, resume? }`
 * - `message` — a pushed message: `{ seq, data, from?, group? }`
 * - `error`   — `{ code, message }`: an error frame that answered no request,
 *               or a login that failed
 * - `close`   — `{ code, reason, reconnectIn }` (`reconnectIn` is null when
 *               the client will not reconnect)
 */
export class PushHub extends EventTarget {
  /**
   * Creates the client and connects at once.
   * @param {string} url the WebSocket URL of a `push_hub` endpoint (protocol json)
   * @param {PushHubOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    if (!options.uid && !options.token) {
      throw new PushHubError("bad_options", "PushHub needs a uid or a token");
    }
    this.url = url;
    this.options = {
      pingInterval: 25000,
      requestTimeout: 10000,
      minDelay: 500,
      maxDelay: 30000,
      reconnect: true,
      storage: typeof sessionStorage === "undefined" ? null : sessionStorage,
      ...options,
    };
    /** @type {"connecting"|"online"|"reconnecting"|"closed"} */
    this.state = "connecting";
    /** The uid the server logged us in as; null before the first welcome. */
    this.uid = null;
    /** The server's id of the current connection. */
    this.connId = null;
    /** The last message sequence number seen; sent as `since` on login. */
    this.lastSeq = null;
    /** The numbering lastSeq belongs to (with history on); sent as `epoch`. */
    this.epoch = null;
    /** The groups joined through this client, joined again on reconnect. */
    this.groups = new Set();

    this._loadPosition(this.options.uid ?? this._lastUID());

    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id → { resolve, reject, timer }
    this._attempt = 0; // failed connection attempts since the last welcome
    this._retryTimer = null;
    this._pingTimer = null;
    this._connect();
  }

  /**
   * Adds a listener that receives the event's detail.
   * @param {string} type an event name: state, welcome, message, error, close
   * @param {(detail: any) => void} fn
   * @returns {() => void} a function that removes the listener
   */
  on(type, fn) {
    const listener = (ev) => fn(ev.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Sends data to exactly one target: a uid (`to`), a group, or everyone.
   * Needs `allow_client_publish` on the endpoint.
   * @param {{to?: string, group?: string, all?: boolean, data: any}} msg
   * @returns {Promise<{delivered: number, dropped: number}>} the `sent` reply
   */
  send({ to, group, all, data }) {
    const frame = { type: "send", data };
    if (to !== undefined) frame.to = to;
    if (group !== undefined) frame.group = group;
    if (all) frame.all = true;
    return this._request(frame).then(({ delivered, dropped }) => ({ delivered, dropped }));
  }

  /**
   * Sends data to the application behind the hub (the endpoint's `events`),
   * as a message event; the application answers, if at all, by pushing.
   * @param {any} data
   * @returns {Promise<void>} settled by the `queued` reply: the hub has queued
   *   it for the application (rejected with `app_unavailable` where the
   *   endpoint sends no messages, `app_busy` when its queue is full)
   */
  async app(data) {
    await this._request({ type: "app", data });
  }

  /**
   * Joins a group (needs `allow_client_groups`); it is joined again after a
   * reconnect.
   * @param {string} group
   * @returns {Promise<void>} settled by the `joined` reply
   */
  async join(group) {
    await this._request({ type: "join", group });
    this.groups.add(group);
  }

  /**
   * Leaves a group.
   * @param {string} group
   * @returns {Promise<void>} settled by the `left` reply
   */
  async leave(group) {
    this.groups.delete(group);
    await this._request({ type: "leave", group });
  }

  /**
   * Pings the server at the application level.
   * @returns {Promise<number>} the round-trip time in milliseconds
   */
  async ping() {
    const start = performance.now();
    await this._request({ type: "ping" }, true);
    return performance.now() - start;
  }

  /** Closes the connection for good: no reconnect. */
  close() {
    clearTimeout(this._retryTimer);
    this._setState("closed");
    if (this._ws) this._drop(this._ws, 1000, "client closed");
  }

  // ---- internals ----

  // The position (last seq and its epoch) is kept in storage per URL and
  // uid, so that a reloaded page resumes where it was. A position of another
  // uid is harmless: its epoch is not the new uid's, so the hub replays
  // what it holds and says the gap could not be filled.
  _key(what, uid) {
    return `pushhub:${what}:${this.url}` + (uid === undefined ? "" : `:${uid}`);
  }

  _lastUID() {
    try {
      return this.options.storage?.getItem(this._key("uid")) ?? undefined;
    } catch {
      return undefined; // storage refused (privacy settings): memory only
    }
  }

  _loadPosition(uid) {
    if (uid === undefined || !this.options.storage) return;
    try {
      const pos = JSON.parse(this.options.storage.getItem(this._key("pos", uid)) ?? "null");
      if (pos && Number.isSafeInteger(pos.seq)) {
        this.lastSeq = pos.seq;
        this.epoch = typeof pos.epoch === "string" ? pos.epoch : null;
        this._posUID = uid;
      }
    } catch {
      // a damaged entry: start without a position
    }
  }

  _savePosition() {
    if (!this.options.storage || this.uid === null || this.lastSeq === null) return;
    try {
      this.options.storage.setItem(this._key("uid"), this.uid);
      this.options.storage.setItem(this._key("pos", this.uid), JSON.stringify({ seq: this.lastSeq, epoch: this.epoch }));
    } catch {
      // storage full or refused: the position lives in memory only
    }
  }

  _connect() {
    const ws = new WebSocket(this.url);
    this._ws = ws;
    ws.onopen = () => {
      const login = { type: "login" };
      if (this.options.token) login.token = this.options.token;
      else login.uid = this.options.uid;
      if (this.lastSeq !== null) {
        login.since = this.lastSeq;
        if (this.epoch !== null) login.epoch = this.epoch;
      }
      ws.send(JSON.stringify(login));
    };
    ws.onmessage = (ev) => this._onFrame(ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev);
    // An "error" event is always followed by "close", which does the work.
  }

  _onFrame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return; // not our protocol; ignore
    }
    const req = f.id !== undefined ? this._pending.get(f.id) : undefined;
    switch (f.type) {
      case "welcome":
        this._attempt = 0;
        if (this._posUID !== undefined && this._posUID !== f.uid) {
          // The position loaded was another uid's: this one starts afresh.
          this.lastSeq = null;
          this.epoch = null;
        }
        this._posUID = f.uid;
        this.uid = f.uid;
        this.connId = f.conn_id;
        if (f.epoch !== undefined && f.epoch !== this.epoch) {
          // A new numbering: what it holds is replayed after the welcome.
          this.lastSeq = f.resume ? f.seq - f.resume.replayed : f.seq;
          this.epoch = f.epoch;
        } else if (this.lastSeq === null) {
          this.lastSeq = f.seq;
        }
        this._savePosition();
        this._setState("online");
        this._startPing();
        for (const g of this.groups) {
          this._request({ type: "join", group: g }).catch((err) => this._emit("error", err));
        }
        this._emit("welcome", f);
        break;
      case "message":
        this.lastSeq = f.seq;
        this._savePosition();
        this._emit("message", f);
        break;
      case "error":
        if (req) {
          this._settle(f.id, null, new PushHubError(f.code, f.message));
        } else {
          this._emit("error", { code: f.code, message: f.message });
        }
        break;
      default: // sent, queued, joined, left, pong
        if (req) this._settle(f.id, f);
    }
  }

  _onClose(ws, ev) {
    if (ws !== this._ws) return; // an old socket
    this._ws = null;
    this._stopPing();
    for (const id of [...this._pending.keys()]) {
      this._settle(id, null, new PushHubError("connection_closed", "the connection closed before the reply"));
    }
    let reconnectIn = null;
    if (this.state !== "closed" && this.options.reconnect && !FATAL_CLOSE_CODES.has(ev.code)) {
      // Exponential backoff with "equal jitter": half fixed, half random.
      const cap = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** this._attempt);
      reconnectIn = Math.round(cap / 2 + Math.random() * (cap / 2));
      this._attempt++;
      this._retryTimer = setTimeout(() => this._connect(), reconnectIn);
      this._setState("reconnecting");
    } else {
      this._setState("closed");
    }
    this._emit("close", { code: ev.code, reason: ev.reason, reconnectIn });
  }

  /**
   * Sends a frame with a fresh id and waits for the reply with that id.
   * @param {object} frame
   * @param {boolean} [beforeLogin] allow it before the welcome (ping only)
   */
  _request(frame, beforeLogin = false) {
    const ws = this._ws;
    const ready = ws && ws.readyState === WebSocket.OPEN && (beforeLogin || this.state === "online");
    if (!ready) {
      return Promise.reject(new PushHubError("not_connected", "the client is not connected"));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this._settle(id, null, new PushHubError("timeout", `no reply to ${frame.type} in time`)),
        this.options.requestTimeout,
      );
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  _settle(id, value, err) {
    const req = this._pending.get(id);
    if (!req) return;
    this._pending.delete(id);
    clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve(value);
  }

  /** Pings on a timer; a ping left unanswered drops the socket to reconnect. */
  _startPing() {
    this._stopPing();
    if (!this.options.pingInterval) return;
    this._pingTimer = setInterval(() => {
      const ws = this._ws;
      this.ping().catch((err) => {
        if (err.code === "timeout" && ws === this._ws) this._drop(ws, 4000, "ping timeout");
      });
    }, this.options.pingInterval);
  }

  /**
   * Closes ws and handles the close at once: a dead link may never finish
   * the closing handshake, and a closed client must not hear from it again.
   */
  _drop(ws, code, reason) {
    ws.onclose = ws.onmessage = null;
    ws.close(code, reason);
    this._onClose(ws, { code, reason });
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
