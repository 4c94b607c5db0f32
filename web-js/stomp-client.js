// A small STOMP 1.2 client over WebSocket for the WsBroker pages: no dependencies, ES module, runs in browsers and Node.
// - connect with a JWT (?access_token= on the upgrade and Authorization: Bearer in CONNECT)
// - heart-beats both ways; a silent server is treated as a lost connection
// - automatic reconnect with exponential back-off and jitter; re-subscribes and resends what was not receipted
// - receipts as promises: send() resolves on RECEIPT, rejects on ERROR or on a /user/queue/errors rejection
// - frames may span WebSocket messages and one message may carry several frames

const LF = 10, CR = 13, NUL = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** STOMP 1.2 header escaping (not used for CONNECT). */
export function escapeHeader(value) {
  return String(value).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}

export function unescapeHeader(value) {
  return value.replace(/\\(.)/g, (_, c) => {
    switch (c) {
      case 'r': return '\r';
      case 'n': return '\n';
      case 'c': return ':';
      case '\\': return '\\';
      default: throw new Error(`invalid escape \\${c}`);
    }
  });
}

/** Serialises a frame into bytes. */
export function encodeFrame(command, headers = {}, body = '') {
  const bytes = typeof body === 'string' ? encoder.encode(body) : body;
  const escape = command !== 'CONNECT' && command !== 'CONNECTED';
  let head = command + '\n';
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue;
    head += (escape ? escapeHeader(name) : name) + ':' + (escape ? escapeHeader(value) : value) + '\n';
  }
  if (bytes.length > 0 || command === 'SEND') head += `content-length:${bytes.length}\n`;
  head += '\n';
  const headBytes = encoder.encode(head);
  const frame = new Uint8Array(headBytes.length + bytes.length + 1);
  frame.set(headBytes, 0);
  frame.set(bytes, headBytes.length);
  frame[frame.length - 1] = NUL;
  return frame;
}

/** An incremental parser: push() bytes, get whole frames ({command, headers, body: Uint8Array, text}) back. */
export class FrameParser {
  constructor() { this.buffer = new Uint8Array(0); }

  push(chunk) {
    const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : new Uint8Array(chunk);
    const merged = new Uint8Array(this.buffer.length + bytes.length);
    merged.set(this.buffer, 0);
    merged.set(bytes, this.buffer.length);
    this.buffer = merged;
    const frames = [];
    let beats = 0;
    for (;;) {
      let start = 0;
      while (start < this.buffer.length && (this.buffer[start] === LF || (this.buffer[start] === CR && this.buffer[start + 1] === LF))) {
        start += this.buffer[start] === CR ? 2 : 1;
        beats++;
      }
      this.buffer = this.buffer.subarray(start);
      const frame = this.#take();
      if (!frame) break;
      frames.push(frame);
    }
    return { frames, beats };
  }

  #take() {
    const buf = this.buffer;
    let pos = 0;
    const line = () => {
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) return null;
      let end = lf;
      if (end > pos && buf[end - 1] === CR) end--;
      const text = decoder.decode(buf.subarray(pos, end));
      pos = lf + 1;
      return text;
    };
    const command = line();
    if (command === null) return null;
    const headers = {};
    for (;;) {
      const h = line();
      if (h === null) return null;
      if (h === '') break;
      const colon = h.indexOf(':');
      if (colon <= 0) throw new Error(`malformed header: ${h}`);
      const raw = [h.slice(0, colon), h.slice(colon + 1)];
      const [name, value] = command === 'CONNECTED' ? raw : raw.map(unescapeHeader);
      if (!(name in headers)) headers[name] = value;        // STOMP 1.2: the first entry wins
    }
    let body;
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (buf.length < pos + length + 1) return null;
      body = buf.slice(pos, pos + length);
      pos += length + 1;
    } else {
      const nul = buf.indexOf(NUL, pos);
      if (nul < 0) return null;
      body = buf.slice(pos, nul);
      pos = nul + 1;
    }
    this.buffer = buf.subarray(pos);
    return { command, headers, body, get text() { return decoder.decode(body); } };
  }
}

/** A rejection from the broker: an ERROR frame or a MESSAGE on /user/queue/errors. */
export class StompRejection extends Error {
  constructor(message, frame) { super(message); this.name = 'StompRejection'; this.frame = frame; }
}

export class StompClient {
  /**
   * @param {object} options
   * @param {string} options.url        ws://host/ws
   * @param {string|function} options.token  JWT, or a function returning one (called on every connect)
   * @param {number[]} [options.heartbeat]    [outgoing, incoming] ms (default [10000, 10000]; 0 = off)
   * @param {number} [options.reconnectDelay] first back-off in ms (default 500); 0 disables reconnecting
   * @param {number} [options.maxReconnectDelay] (default 15000)
   * @param {function} [options.WebSocket]   WebSocket constructor (for tests)
   * @param {object} [options.timers]  { setTimeout, clearTimeout, setInterval, clearInterval } (for tests)
   */
  constructor(options) {
    this.url = options.url;
    this.token = options.token;
    this.heartbeat = options.heartbeat ?? [10000, 10000];
    this.reconnectDelay = options.reconnectDelay ?? 500;
    this.maxReconnectDelay = options.maxReconnectDelay ?? 15000;
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    this.timers = options.timers ?? globalThis;
    this.random = options.random ?? Math.random;
    this.state = 'idle';
    this.listeners = new Map();
    this.subscriptions = new Map();     // id -> { destination, callback, headers }
    this.pending = new Map();           // receipt -> { frame, resolve, reject, resend }
    this.nextId = 1;
    this.attempt = 0;
    this.socket = null;
    this.connected = null;
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  #emit(event, ...args) { for (const fn of this.listeners.get(event) ?? []) fn(...args); }

  #setState(state, detail) {
    if (this.state === state && detail === undefined) return;      // repeated reconnect attempts are still announced
    this.state = state;
    this.#emit('state', state, detail);
  }

  /** Connects (and keeps reconnecting until disconnect()). Resolves on the first CONNECTED. */
  connect() {
    if (this.connected) return this.connected;
    this.stopped = false;
    this.connected = new Promise((resolve, reject) => { this.firstConnect = { resolve, reject }; });
    this.#open();
    return this.connected;
  }

  #open() {
    this.#setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const token = typeof this.token === 'function' ? this.token() : this.token;
    const separator = this.url.includes('?') ? '&' : '?';
    const socket = new this.WebSocketImpl(`${this.url}${separator}access_token=${encodeURIComponent(token)}`, ['v12.stomp']);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    const parser = new FrameParser();
    socket.onopen = () => {
      socket.send(encodeFrame('CONNECT', {
        'accept-version': '1.2', host: 'wsbroker', 'heart-beat': this.heartbeat.join(','), Authorization: `Bearer ${token}`,
      }));
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.lastReceived = Date.now();
      let parsed;
      try { parsed = parser.push(event.data); } catch (error) { this.#emit('error', error); socket.close(); return; }
      for (const frame of parsed.frames) this.#onFrame(frame);
    };
    socket.onclose = (event) => { if (socket === this.socket) this.#onClose(event); };
    socket.onerror = () => {};
  }

  #onFrame(frame) {
    switch (frame.command) {
      case 'CONNECTED': return this.#onConnected(frame);
      case 'MESSAGE': {
        if (frame.headers.destination === '/user/queue/errors') return this.#onRejection(frame);
        const sub = this.subscriptions.get(frame.headers.subscription);
        if (sub) sub.callback(frame);
        return;
      }
      case 'RECEIPT': {
        const entry = this.pending.get(frame.headers['receipt-id']);
        if (entry) { this.pending.delete(frame.headers['receipt-id']); entry.resolve(frame); }
        return;
      }
      case 'ERROR': {
        const message = frame.headers.message ?? 'error';
        this.#emit('error', new StompRejection(message, frame));
        const entry = this.pending.get(frame.headers['receipt-id']);
        if (entry) { this.pending.delete(frame.headers['receipt-id']); entry.reject(new StompRejection(message, frame)); }
        if (/^authentication failed/.test(message)) {
          this.stopped = true;                       // a bad token does not get better by retrying
          this.firstConnect?.reject(new StompRejection(message, frame));
        }
        return;
      }
    }
  }

  #onConnected(frame) {
    this.attempt = 0;
    const [sx, sy] = (frame.headers['heart-beat'] ?? '0,0').split(',').map(Number);
    const [cx, cy] = this.heartbeat;
    const send = cx && sy ? Math.max(cx, sy) : 0;
    const expect = cy && sx ? Math.max(cy, sx) : 0;
    this.#stopTimers();
    if (send) this.beatTimer = this.timers.setInterval(() => this.socket?.send('\n'), send);
    if (expect) {
      this.lastReceived = Date.now();
      this.watchTimer = this.timers.setInterval(() => {
        if (Date.now() - this.lastReceived <= expect * 2) return;
        // Reconnect now: on a half-open link the browser can wait a minute for the closing handshake before 'close'.
        const dead = this.socket;
        this.#onClose({ code: 4000, reason: 'heart-beat timeout' });   // this.socket is now null: dead's late close is ignored
        try { dead?.close(4000, 'heart-beat timeout'); } catch { /* already closing */ }
      }, expect);
    }
    this.session = frame.headers.session;
    this.user = frame.headers['user-name'];
    // Re-subscribe everything (the broker keeps nothing across connections), then resend what was never receipted.
    this.#raw('SUBSCRIBE', { id: '__errors', destination: '/user/queue/errors' });
    for (const [id, sub] of this.subscriptions) this.#raw('SUBSCRIBE', { ...sub.headers, id, destination: sub.destination });
    for (const entry of this.pending.values()) if (entry.resend) this.socket.send(entry.frame);
    this.#setState('connected', frame);
    this.firstConnect?.resolve(frame);
    this.firstConnect = null;
  }

  #onRejection(frame) {
    const error = new StompRejection(frame.headers.message ?? 'rejected', frame);
    const entry = this.pending.get(frame.headers['receipt-id']);
    if (entry) { this.pending.delete(frame.headers['receipt-id']); entry.reject(error); }
    this.#emit('rejected', error);
  }

  #onClose(event) {
    this.#stopTimers();
    this.socket = null;
    if (this.stopped || this.reconnectDelay === 0) {
      this.#setState('offline', event);
      for (const entry of this.pending.values()) entry.reject(new Error('disconnected'));
      this.pending.clear();
      this.firstConnect?.reject(new Error(`connection closed (${event?.code ?? 'unknown'})`));
      this.firstConnect = null;
      this.connected = null;
      return;
    }
    // What is not resent after the reconnect (read receipts, typing) fails now, so its sender can retry or give up.
    for (const [id, entry] of this.pending) {
      if (!entry.resend) { this.pending.delete(id); entry.reject(new Error('disconnected')); }
    }
    this.attempt++;
    const base = Math.min(this.maxReconnectDelay, this.reconnectDelay * 2 ** (this.attempt - 1));
    const delay = Math.round(base / 2 + this.random() * base / 2);     // jitter: many clients do not come back at once
    this.#setState('reconnecting', { delay, attempt: this.attempt });
    this.reconnectTimer = this.timers.setTimeout(() => { this.reconnectTimer = null; if (!this.stopped) this.#open(); }, delay);
  }

  #stopTimers() {
    if (this.beatTimer) this.timers.clearInterval(this.beatTimer);
    if (this.watchTimer) this.timers.clearInterval(this.watchTimer);
    this.beatTimer = this.watchTimer = null;
  }

  #raw(command, headers, body) {
    if (this.state === 'connected' || command === 'SUBSCRIBE') {
      if (this.socket && this.socket.readyState === 1) this.socket.send(encodeFrame(command, headers, body));
    }
  }

  get isConnected() { return this.state === 'connected'; }

  /** Subscribes; the subscription survives reconnects. Returns { id, unsubscribe() }. */
  subscribe(destination, callback, headers = {}) {
    const id = `sub-${this.nextId++}`;
    this.subscriptions.set(id, { destination, callback, headers });
    if (this.isConnected) this.#raw('SUBSCRIBE', { ...headers, id, destination });
    return {
      id,
      unsubscribe: () => {
        this.subscriptions.delete(id);
        if (this.isConnected) this.#raw('UNSUBSCRIBE', { id });
      },
    };
  }

  /**
   * Sends a message and resolves with the RECEIPT (for chat: after the message is stored). Rejects with a
   * StompRejection on ERROR or /user/queue/errors. Unreceipted sends are resent after a reconnect unless
   * { resend: false } (typing notices are not worth resending).
   */
  send(destination, body = '', headers = {}, { resend = true, timeout = 0 } = {}) {
    const receipt = `r-${this.nextId++}`;
    const frame = encodeFrame('SEND', { ...headers, destination, receipt }, body);
    return new Promise((resolve, reject) => {
      const entry = { frame, resolve, reject, resend };
      this.pending.set(receipt, entry);
      if (timeout) {
        this.timers.setTimeout(() => {
          if (this.pending.delete(receipt)) reject(new Error('no receipt in time'));
        }, timeout);
      }
      if (this.isConnected && this.socket?.readyState === 1) this.socket.send(frame);
      else if (!resend) { this.pending.delete(receipt); reject(new Error('not connected')); }
    });
  }

  /** Sends DISCONNECT (waiting for its receipt) and stops reconnecting. */
  async disconnect() {
    this.stopped = true;
    if (this.reconnectTimer) { this.timers.clearTimeout(this.reconnectTimer); this.reconnectTimer = null; }
    const socket = this.socket;
    if (socket && this.isConnected && socket.readyState === 1) {
      await new Promise((resolve) => {
        const receipt = `bye-${this.nextId++}`;
        const timer = this.timers.setTimeout(resolve, 2000);
        this.pending.set(receipt, { resolve: () => { this.timers.clearTimeout(timer); resolve(); }, reject: resolve, resend: false });
        socket.send(encodeFrame('DISCONNECT', { receipt }));
      });
      socket.close(1000, 'bye');
    } else if (socket) {
      socket.close(1000, 'bye');
    }
    this.#stopTimers();
    this.#setState('offline');
    this.connected = null;
  }
}
