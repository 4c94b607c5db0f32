// The pages' STOMP connection: @stomp/stompjs (vendor/stompjs, the pinned package's own ES modules) does the protocol,
// reconnects, heart-beats and background-tab timers. This file adds only what WsBroker's chat needs on top:
// - the JWT on every (re)connect: ?access_token= on the upgrade and Authorization: Bearer in CONNECT
// - subscriptions that survive reconnects, their headers computed again at each SUBSCRIBE (for `since:`)
// - receipts as promises: send() resolves with the RECEIPT (its `message-id` for a stored chat message) and rejects on
//   an ERROR or a /user/queue/errors rejection carrying its receipt-id
// - an outbox: a send not yet answered is sent again, same frame and headers (so the same `client-msg-id`), after
//   each reconnect until it is answered
// - one connection state for the banner: connecting, connected, reconnecting, offline
// - the token refreshed before its exp (docs/design.md §3 "Long-lived sessions"): a new one from `refreshToken` is SENT
//   to /session/token with a receipt; when that fails, the connection is made again with a fresh token
import { Client, ReconnectionTimeMode, TickerStrategy } from './vendor/stompjs/index.js';

/** A rejection from the broker: an ERROR frame or a MESSAGE on /user/queue/errors. */
export class StompRejection extends Error {
  constructor(message, frame) { super(message); this.name = 'StompRejection'; this.frame = frame; }
}

export const ERRORS_QUEUE = '/user/queue/errors';
export const TOKEN_DESTINATION = '/session/token';

/** The claims of a JWT, unverified ({} when it is not one): the broker verifies, the client only reads its times. */
function claimsOf(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '='))) ?? {};
  } catch {
    return {};
  }
}

/**
 * Milliseconds from `now` until `token` is to be refreshed; null when it has no exp (it never expires). At 80% of its
 * lifetime (exp - iat, or what is left when it has no iat) or 30 s before exp, whichever is sooner, but never before half
 * of what is left: a short token is not refreshed in a loop. 0 once it has expired.
 */
export function refreshDelay(token, now = Date.now()) {
  const { exp, iat } = claimsOf(token);
  if (typeof exp !== 'number') return null;
  const left = exp * 1000 - now;
  if (left <= 0) return 0;
  const lifetime = typeof iat === 'number' && iat < exp ? (exp - iat) * 1000 : left;
  return Math.max(Math.min(left - 0.2 * lifetime, left - 30_000), left / 2);
}

const MAX_TIMER = 2 ** 31 - 1;                    // setTimeout's longest delay (about 24.8 days)

export class Connection {
  /**
   * @param {object} o
   * @param {string} o.url  ws://host/ws
   * @param {string|(() => string)} o.token  the JWT, or a function returning it (asked on every connect until a refresh
   *   replaces it)
   * @param {(current: string) => Promise<string>} [o.refreshToken]  a new JWT for the same user, expiring later: called
   *   before the current one expires (see refreshDelay) and before a reconnect whose token is due or was refused. Without
   *   it the session ends at the token's exp (ERROR `token expired`).
   * @param {number[]} [o.heartbeat]  [outgoing, incoming] ms (default [10000, 10000])
   * @param {number} [o.reconnectDelay]  first back-off in ms (default 500), doubling up to maxReconnectDelay
   * @param {number} [o.maxReconnectDelay]  (default 8000)
   * @param {function} [o.WebSocket]  a WebSocket constructor (tests; browsers use their own)
   * @param {(message: string) => void} [o.debug]
   */
  constructor(o) {
    this.url = o.url;
    this.token = o.token;
    this.refreshToken = o.refreshToken ?? null;
    this.needsFreshToken = false;          // the broker refused or expired the token: get a fresh one before reconnecting
    this.refreshTimer = null;
    this.refreshing = false;
    this.state = 'idle';
    this.listeners = new Map();
    this.subscriptions = new Map();        // id -> { destination, callback, headers (object or function) }
    this.pending = new Map();              // receipt -> { destination, body, headers, resolve, reject, resend }
    this.nextId = 1;
    this.prefix = Math.random().toString(36).slice(2, 8);
    this.connectedOnce = false;
    const [outgoing, incoming] = o.heartbeat ?? [10000, 10000];
    const WebSocketImpl = o.WebSocket;
    this.client = new Client({
      heartbeatOutgoing: outgoing,
      heartbeatIncoming: incoming,
      // Heart-beats from a Worker: a background tab's timers run once a minute, a Worker's are not throttled.
      heartbeatStrategy: TickerStrategy.Worker,
      // A silent server: drop the socket at once rather than wait for a closing handshake on a half-open link.
      discardWebsocketOnCommFailure: true,
      reconnectDelay: o.reconnectDelay ?? 500,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      maxReconnectDelay: o.maxReconnectDelay ?? 8000,
      connectionTimeout: o.connectionTimeout ?? 10000,
      debug: o.debug ?? (() => {}),
      beforeConnect: async (client) => {
        const token = await this.#tokenForConnect();
        const separator = this.url.includes('?') ? '&' : '?';
        client.brokerURL = `${this.url}${separator}access_token=${encodeURIComponent(token)}`;
        client.connectHeaders = { host: 'wsbroker', Authorization: `Bearer ${token}` };
      },
      webSocketFactory: WebSocketImpl ? () => new WebSocketImpl(this.client.brokerURL, ['v12.stomp']) : undefined,
      onConnect: (frame) => this.#onConnected(frame),
      onStompError: (frame) => this.#onError(frame),
      onWebSocketClose: (event) => this.#onClose(event),
      onUnhandledMessage: () => {},
      onUnhandledReceipt: () => {},
    });
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  #emit(event, ...args) { for (const fn of this.listeners.get(event) ?? []) fn(...args); }

  #currentToken() { return typeof this.token === 'function' ? this.token() : this.token; }

  /** A new token from refreshToken, checked to be one; it replaces the current one once the broker took it. */
  async #fetchToken() {
    const fresh = await this.refreshToken(this.#currentToken());
    if (typeof fresh !== 'string' || fresh.split('.').length !== 3) throw new Error('refreshToken did not return a JWT');
    return fresh;
  }

  #adopt(fresh) {
    this.token = fresh;
    this.needsFreshToken = false;
    this.#emit('token', fresh);
  }

  /** The token of the next CONNECT: a fresh one when the current one is due for a refresh or was refused. Never throws
   * (stompjs stops reconnecting when beforeConnect does): if no fresh one comes, the current one is tried. */
  async #tokenForConnect() {
    if (this.refreshToken && (this.needsFreshToken || refreshDelay(this.#currentToken()) === 0)) {
      try { this.#adopt(await this.#fetchToken()); } catch (e) { this.#emit('refresh-failed', e); }
    }
    return this.#currentToken();
  }

  #scheduleRefresh(delay = refreshDelay(this.#currentToken())) {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!this.refreshToken || delay === null || this.stopped) return;
    this.refreshTimer = setTimeout(() => this.#refresh(), Math.min(delay, MAX_TIMER));
  }

  /** The in-band refresh: SEND /session/token with the new token and a receipt. If refreshToken fails, it is asked again
   * later (the session lives on until exp). If the broker refuses or does not answer, it has closed the session or will:
   * the connection is made again with a fresh token. */
  async #refresh() {
    if (!this.isConnected || this.refreshing) return;
    this.refreshing = true;
    try {
      let fresh;
      try {
        fresh = await this.#fetchToken();
      } catch (e) {
        this.#emit('refresh-failed', e);
        const left = (claimsOf(this.#currentToken()).exp ?? 0) * 1000 - Date.now();
        this.#scheduleRefresh(Math.min(30_000, Math.max(1000, left / 4)));
        return;
      }
      try {
        await this.send(TOKEN_DESTINATION, '', { authorization: `Bearer ${fresh}` }, { resend: false, timeout: 10_000 });
      } catch (e) {
        this.#emit('refresh-failed', e);
        this.needsFreshToken = true;
        this.client.forceDisconnect();
        return;
      }
      this.#adopt(fresh);
      this.#scheduleRefresh();
    } finally {
      this.refreshing = false;
    }
  }

  #setState(state, detail) {
    if (this.state === state) return;
    this.state = state;
    this.#emit('state', state, detail);
  }

  get isConnected() { return this.state === 'connected' && this.client.connected; }

  /** The user name from CONNECTED. */
  get user() { return this.connectedFrame?.headers['user-name']; }

  /** Connects and keeps reconnecting until disconnect(). Resolves on the first CONNECTED. */
  connect() {
    if (this.connected) return this.connected;
    this.stopped = false;
    this.connected = new Promise((resolve, reject) => { this.firstConnect = { resolve, reject }; });
    this.#setState('connecting');
    this.client.activate();
    return this.connected;
  }

  #onConnected(frame) {
    this.connectedFrame = frame;
    this.connectedOnce = true;
    // The broker keeps nothing across connections: the errors queue first (a rejection has somewhere to go), then
    // every subscription with its headers of now (a `since:` of the last message held), then what was never answered.
    this.client.subscribe(ERRORS_QUEUE, (f) => this.#onRejection(f), { id: '__errors' });
    for (const [id, sub] of this.subscriptions) this.#subscribe(id, sub);
    for (const [receipt, entry] of this.pending) this.#publish(receipt, entry);
    this.#setState('connected', frame);
    this.firstConnect?.resolve(frame);
    this.firstConnect = null;
    this.#scheduleRefresh();
  }

  #subscribe(id, sub) {
    const headers = typeof sub.headers === 'function' ? sub.headers() : sub.headers;
    this.client.subscribe(sub.destination, (message) => sub.callback(message), { ...headers, id });
  }

  #publish(receipt, entry) {
    try {
      this.client.watchForReceipt(receipt, (frame) => {
        if (this.pending.get(receipt) !== entry) return;
        this.pending.delete(receipt);
        entry.resolve(frame);
      });
      this.client.publish({ destination: entry.destination, body: entry.body, headers: { ...entry.headers, receipt } });
    } catch {
      /* the connection went away meanwhile: sent again after the reconnect, or failed at the close */
    }
  }

  #onError(frame) {
    const message = frame.headers.message ?? 'error';
    this.#emit('error', new StompRejection(message, frame));
    const entry = this.pending.get(frame.headers['receipt-id']);
    if (entry) { this.pending.delete(frame.headers['receipt-id']); entry.reject(new StompRejection(message, frame)); }
    if (message === 'token expired' || message.startsWith('token refresh refused')) this.needsFreshToken = true;
    if (/^authentication failed/.test(message)) {
      this.stopped = true;                              // a bad token does not get better by retrying
      this.firstConnect?.reject(new StompRejection(message, frame));
      this.firstConnect = null;
      this.client.deactivate({ force: true });
    }
  }

  #onRejection(frame) {
    const error = new StompRejection(frame.headers.message ?? 'rejected', frame);
    const entry = this.pending.get(frame.headers['receipt-id']);
    if (entry) { this.pending.delete(frame.headers['receipt-id']); entry.reject(error); }
    this.#emit('rejected', error);
  }

  #onClose(event) {
    clearTimeout(this.refreshTimer);                   // scheduled again once connected
    this.refreshTimer = null;
    if (this.stopped) {
      for (const entry of this.pending.values()) entry.reject(new Error('disconnected'));
      this.pending.clear();
      this.connected = null;
      this.#setState('offline', event);
      return;
    }
    // What is not sent again after the reconnect (read receipts, typing) fails now, so its sender can retry or give up.
    for (const [receipt, entry] of this.pending) {
      if (!entry.resend) { this.pending.delete(receipt); entry.reject(new Error('disconnected')); }
    }
    this.#setState(this.connectedOnce ? 'reconnecting' : 'connecting', event);
  }

  /**
   * Subscribes; the subscription survives reconnects. `headers` may be a function: it is called at every SUBSCRIBE,
   * so a resumed subscription asks for what it has not seen yet. Returns { id, unsubscribe() }.
   */
  subscribe(destination, callback, headers = {}) {
    const id = `sub-${this.nextId++}`;
    const sub = { destination, callback, headers };
    this.subscriptions.set(id, sub);
    if (this.isConnected) this.#subscribe(id, sub);
    return {
      id,
      unsubscribe: () => {
        this.subscriptions.delete(id);
        if (this.isConnected) this.client.unsubscribe(id);
      },
    };
  }

  /**
   * Sends and resolves with the RECEIPT (for a chat message: once it is stored). Rejects with a StompRejection on an
   * ERROR or a /user/queue/errors rejection. Unanswered sends are sent again after a reconnect, unchanged, unless
   * { resend: false } (typing and read receipts fail at a drop instead).
   */
  send(destination, body = '', headers = {}, { resend = true, timeout = 0 } = {}) {
    const receipt = `r-${this.prefix}-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const entry = { destination, body, headers, resolve, reject, resend };
      if (!this.isConnected && !resend) { reject(new Error('not connected')); return; }
      this.pending.set(receipt, entry);
      if (timeout) {
        setTimeout(() => {
          if (this.pending.get(receipt) === entry) { this.pending.delete(receipt); reject(new Error('no receipt in time')); }
        }, timeout);
      }
      if (this.isConnected) this.#publish(receipt, entry);
    });
  }

  /** Sends DISCONNECT (waiting for its receipt), closes and stops reconnecting. */
  async disconnect() {
    this.stopped = true;
    this.firstConnect = null;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    // DISCONNECT waits for its RECEIPT; a broker that does not answer within 2 s gets the socket dropped.
    let timer;
    await Promise.race([
      this.client.deactivate(),
      new Promise((resolve) => { timer = setTimeout(resolve, 2000); }).then(() => this.client.deactivate({ force: true })),
    ]);
    clearTimeout(timer);
    for (const entry of this.pending.values()) entry.reject(new Error('disconnected'));
    this.pending.clear();
    this.connected = null;
    this.#setState('offline');
  }
}
