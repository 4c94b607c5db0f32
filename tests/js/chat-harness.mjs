// A chat party on @stomp/stompjs that behaves as a careful client should (the web-js pages do the same): on every
// (re)connect it subscribes with `since:` = the last message id it holds, and resends every message that has no RECEIPT
// yet with the same `client-msg-id`. It records everything it receives as-is (no client-side dedup), so a duplicate or a
// reordering by the broker shows up in the comparison with the database.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { token } from './broker.mjs';

/** Broker arguments for fast chat tests: demo users, no rate limit in the way. */
export const chatArgs = ['--Chat:DemoUsers=true', '--Chat:MessagesPerSecond=100000', '--Chat:MessageBurst=100000'];

/** Resolves when `predicate()` is true; re-checked whenever `emitter` signals (no polling); rejects after `ms`. */
export function waitFor(signal, predicate, ms, what) {
  if (predicate()) return Promise.resolve();
  return new Promise((ok, fail) => {
    const check = () => {
      if (!predicate()) return;
      clearTimeout(timer);
      signal.off(check);
      ok();
    };
    const timer = setTimeout(() => { signal.off(check); fail(new Error(`timed out after ${ms} ms waiting for ${what()}`)); }, ms);
    signal.on(check);
  });
}

/** A tiny change signal: parties call `fire()` on every frame they take in; waiters re-check their predicate. */
export class Signal {
  #listeners = new Set();
  on(f) { this.#listeners.add(f); }
  off(f) { this.#listeners.delete(f); }
  fire() { for (const f of [...this.#listeners]) f(); }
}

export class Party {
  /**
   * @param {object} o
   * @param {string} o.userId   user id (admin1 / client1 …)
   * @param {string} o.role     admin | client
   * @param {string|function(): string} o.wsUrl ws://127.0.0.1:port/ws (stays the same across broker restarts), or a
   *   function asked at each connect (a cluster test moves a party to another node)
   * @param {string} o.destination the conversation, /topic/private-chat/{adminId}/{clientId}
   * @param {string} [o.subscribeTo] what to SUBSCRIBE to (default: destination; an admin may take …/{adminId}/*)
   * @param {Signal} o.signal
   * @param {boolean} [o.resendWhenUnavailable] resend (after 200 ms) a message refused with "storage unavailable", as a
   *   client does while the broker's storage or cluster is away; such refusals are then counted, not reported as errors
   */
  constructor({ userId, role, wsUrl, destination, subscribeTo = destination, signal, resendWhenUnavailable = false }) {
    Object.assign(this, { userId, role, wsUrl, destination, subscribeTo, signal, resendWhenUnavailable });
    this.unavailable = 0;         // refusals "storage unavailable" that were resent
    this.run = randomBytes(4).toString('hex');
    this.held = [];               // every MESSAGE taken in, in arrival order: { id: BigInt, cmid, sender, replay, connection }
    this.lastId = 0n;
    this.violations = [];         // duplicates / out-of-order ids / replay truncation, as readable lines
    this.pending = new Map();     // client-msg-id -> { body, attempts } : not confirmed by a RECEIPT yet
    this.confirmed = new Map();   // client-msg-id -> message-id from its RECEIPT
    this.produced = [];           // every client-msg-id this party created, in order
    this.userErrors = [];         // MESSAGEs on /user/queue/errors
    this.stompErrors = [];        // ERROR frames (message header)
    this.connections = 0;
    this.drops = 0;
    this.resends = 0;
    this.replayed = 0;
  }

  get connected() { return this.client?.connected === true; }

  /** Activates the stompjs client (reconnectDelay 100 ms) and resolves on the first CONNECTED. */
  async start() {
    const jwt = token(this.userId, this.role);
    this.client = new Client({
      webSocketFactory: () => new WebSocket(typeof this.wsUrl === 'function' ? this.wsUrl() : this.wsUrl, ['v12.stomp']),
      connectHeaders: { Authorization: `Bearer ${jwt}` },
      reconnectDelay: 100,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    this.client.onConnect = () => this.#onConnect();
    this.client.onUnhandledReceipt = (frame) => this.#onReceipt(frame);
    this.client.onStompError = (frame) => { this.stompErrors.push(frame.headers.message); this.signal.fire(); };
    this.client.onWebSocketClose = () => this.signal.fire();
    this.client.activate();
    await waitFor(this.signal, () => this.connected, 10_000, () => `${this.userId} to connect`);
  }

  async stop() { await this.client?.deactivate(); }

  #onConnect() {
    this.connections++;
    const connection = this.connections;
    this.client.subscribe(this.subscribeTo, (m) => this.#onMessage(m, connection),
      { id: `chat-${connection}`, since: String(this.lastId) });
    this.client.subscribe('/user/queue/errors', (m) => this.#onError(m), { id: `errors-${connection}` });
    for (const [cmid, p] of this.pending) {
      if (p.attempts > 0) this.resends++;
      this.#send(cmid, p);
    }
    this.signal.fire();
  }

  #onMessage(m, connection) {
    if (m.headers.replay === 'truncated') {
      this.violations.push(`${this.userId}: replay truncated at connection ${connection} (replay-next ${m.headers['replay-next']}), since ${this.lastId}`);
    } else {
      const id = BigInt(m.headers['message-id']);
      const replay = m.headers.replay === 'true';
      if (replay) this.replayed++;
      if (id <= this.lastId) {
        this.violations.push(`${this.userId}: got ${id} (${replay ? 'replay' : 'live'}, connection ${connection}, client-msg-id ${m.headers['client-msg-id']}) after ${this.lastId}: ${id === this.lastId ? 'duplicate' : 'out of order'}`);
      } else {
        this.lastId = id;
      }
      this.held.push({ id, cmid: m.headers['client-msg-id'], sender: m.headers.sender, replay, connection });
    }
    this.signal.fire();
  }

  #onError(m) {
    const cmid = /^m:(.+):\d+$/.exec(m.headers['receipt-id'] ?? '')?.[1];
    const p = cmid && this.pending.get(cmid);
    if (this.resendWhenUnavailable && p && /storage unavailable/.test(m.headers.message ?? '')) {
      this.unavailable++;
      setTimeout(() => { if (this.pending.get(cmid) === p && this.connected) this.#send(cmid, p); }, 200);
    } else {
      this.userErrors.push(`${m.headers.message} (receipt-id ${m.headers['receipt-id']})`);
    }
    this.signal.fire();
  }

  #onReceipt(frame) {
    const rid = frame.headers['receipt-id'];
    const match = /^m:(.+):\d+$/.exec(rid ?? '');
    if (!match) return;
    const cmid = match[1];
    const id = frame.headers['message-id'];
    if (!id) this.violations.push(`${this.userId}: RECEIPT ${rid} without message-id`);
    const before = this.confirmed.get(cmid);
    if (before !== undefined && before !== id) this.violations.push(`${this.userId}: ${cmid} confirmed as ${before} and then as ${id}`);
    this.confirmed.set(cmid, id);
    this.pending.delete(cmid);
    this.signal.fire();
  }

  #send(cmid, p) {
    p.attempts++;
    try {
      this.client.publish({
        destination: this.destination, body: p.body,
        headers: { 'client-msg-id': cmid, receipt: `m:${cmid}:${p.attempts}` },
      });
    } catch { /* the socket went away under us: it stays pending and is resent at the next CONNECTED */ }
  }

  /** Creates message number `i` and sends it now if connected (else at the next CONNECTED). */
  say(i) {
    const cmid = `${this.userId}-${this.run}-${i}`;
    const p = { body: `${this.userId} says ${i}`, attempts: 0 };
    this.produced.push(cmid);
    this.pending.set(cmid, p);
    if (this.connected) this.#send(cmid, p);
  }

  /** Cuts the socket abruptly (TCP reset, no close handshake, no DISCONNECT); stompjs reconnects by itself. */
  drop() {
    const ws = this.client?.webSocket;
    if (!this.connected || !ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.terminate();
    this.drops++;
    return true;
  }

  summary() {
    return `${this.userId}: produced ${this.produced.length}, pending ${this.pending.size}, confirmed ${this.confirmed.size}, ` +
      `held ${this.held.length} (last ${this.lastId}, replayed ${this.replayed}), connections ${this.connections}, drops ${this.drops}, ` +
      `resends ${this.resends}, refused unavailable ${this.unavailable}, user errors ${JSON.stringify(this.userErrors.slice(0, 3))}, ERRORs ${JSON.stringify(this.stompErrors.slice(0, 3))}, ` +
      `violations ${this.violations.length}${this.violations.length ? ': ' + this.violations.slice(0, 3).join(' | ') : ''}`;
  }
}

/**
 * One party's side of the conversation: `total` messages, at most `window` unconfirmed at once, and a socket drop before
 * each message whose number is in `dropAt` (waiting for the connection first, so every drop cuts a live session).
 * `onProgress(i)` is called before message i (the restart test kills the broker from there).
 */
export async function talk(party, { total, window = 20, dropAt = new Set(), timeoutMs = 60_000, onProgress }) {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  for (let i = 0; i < total; i++) {
    await onProgress?.(i);
    if (dropAt.has(i)) {
      await waitFor(party.signal, () => party.connected, left(), () => `${party.userId} to reconnect before drop at ${i}: ${party.summary()}`);
      party.drop();
    }
    await waitFor(party.signal, () => party.pending.size < window, left(), () => `${party.userId} window at message ${i}: ${party.summary()}`);
    party.say(i);
    if (Math.random() < 0.3) await new Promise((r) => setImmediate(r));   // let the other side interleave
  }
  await waitFor(party.signal, () => party.pending.size === 0, left(), () => `${party.userId} all receipts: ${party.summary()}`);
}

/** `count` distinct random message numbers in [from, to). */
export function randomPoints(count, from, to) {
  const points = new Set();
  while (points.size < count) points.add(from + Math.floor(Math.random() * (to - from)));
  return points;
}

/** The conversation's whole history from REST, oldest first (pages of 100 with `before`, newest first on the wire). */
export async function history(baseUrl, adminId, clientId, asUser, role) {
  const auth = { authorization: `Bearer ${token(asUser, role)}` };
  const all = [];
  let before = null;
  for (let page = 0; page < 1000; page++) {
    const url = `${baseUrl}/api/conversations/${adminId}/${clientId}/messages?limit=100${before ? `&before=${before}` : ''}`;
    const response = await fetch(url, { headers: auth, signal: AbortSignal.timeout(10_000) });
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
    const json = await response.json();
    all.push(...json.messages);
    if (!json.nextBefore) return all.reverse().map((m) => ({ id: BigInt(m.id), cmid: m.clientMsgId, sender: m.sender }));
    before = json.nextBefore;
  }
  throw new Error('history did not end after 1000 pages');
}

/** Null when `got` and `want` hold the same ids in the same order; else a readable account of the first divergence. */
export function firstDivergence(got, want, label) {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i]?.id !== want[i]?.id) {
      const show = (list) => list.slice(Math.max(0, i - 3), i + 4)
        .map((m, k) => `${Math.max(0, i - 3) + k === i ? '>' : ' '}${m.id}(${m.cmid}${m.replay === undefined ? '' : m.replay ? ',replay' : ',live'}${m.connection ? `,c${m.connection}` : ''})`).join(' ');
      return `${label}: first divergence at index ${i} of ${got.length} held / ${want.length} stored\n` +
        `  held:   ${show(got)}\n  stored: ${show(want)}`;
    }
  }
  return null;
}

/** Checks on the stored conversation itself and on the RECEIPTs: each produced client-msg-id stored exactly once, and
 * every RECEIPT's message-id is the stored id of its client-msg-id. Returns readable problems. */
export function storeProblems(stored, parties) {
  const problems = [];
  const byCmid = new Map();
  for (const m of stored) {
    if (!m.cmid) { problems.push(`stored message ${m.id} has no client-msg-id`); continue; }
    if (byCmid.has(m.cmid)) problems.push(`client-msg-id ${m.cmid} stored twice: ${byCmid.get(m.cmid)} and ${m.id}`);
    else byCmid.set(m.cmid, m.id);
  }
  for (let i = 1; i < stored.length; i++) if (stored[i].id <= stored[i - 1].id) problems.push(`history not in id order at ${i}`);
  for (const p of parties) {
    for (const cmid of p.produced) if (!byCmid.has(cmid)) problems.push(`${cmid} (${p.userId}) never stored`);
    for (const [cmid, id] of p.confirmed) {
      if (!byCmid.has(cmid)) problems.push(`${cmid} got RECEIPT message-id ${id} but is not stored`);
      else if (String(byCmid.get(cmid)) !== id) problems.push(`${cmid} got RECEIPT message-id ${id} but is stored as ${byCmid.get(cmid)}`);
    }
  }
  const produced = new Set(parties.flatMap((p) => p.produced));
  for (const cmid of byCmid.keys()) if (!produced.has(cmid)) problems.push(`stored ${cmid} that nobody sent`);
  return problems;
}

/** Waits for every party to hold the last stored id, then returns the readable problems of the whole run. */
export async function verify({ baseUrl, adminId, clientId, parties, signal, timeoutMs = 15_000 }) {
  const stored = await history(baseUrl, adminId, clientId, clientId, 'client');
  const lastId = stored.at(-1)?.id ?? 0n;
  try {
    await waitFor(signal, () => parties.every((p) => p.lastId >= lastId), timeoutMs,
      () => `every party to hold ${lastId}: ${parties.map((p) => p.summary()).join('; ')}`);
  } catch (e) { /* reported through the divergence below */ }
  const problems = [];
  for (const p of parties) {
    problems.push(...p.violations.slice(0, 5));
    if (p.userErrors.length) problems.push(`${p.userId} user errors: ${p.userErrors.slice(0, 3).join(' | ')}`);
    const divergence = firstDivergence(p.held, stored, p.userId);
    if (divergence) problems.push(divergence);
  }
  problems.push(...storeProblems(stored, parties).slice(0, 10));
  return { stored, problems };
}

/** A fresh MariaDB database for one test (WSBROKER_TEST_MYSQL names the server, as for the C# suites), dropped after. */
export function mariaDatabase() {
  const server = process.env.WSBROKER_TEST_MYSQL ?? 'Server=127.0.0.1;Port=3306;User ID=wsbroker;Password=wsbroker;Database=wsbroker_test';
  const parts = Object.fromEntries(server.split(';').filter(Boolean).map((kv) => {
    const at = kv.indexOf('=');
    return [kv.slice(0, at).trim().toLowerCase(), kv.slice(at + 1).trim()];
  }));
  const cli = (sql) => spawnSync('mariadb', ['-h', parts.server ?? '127.0.0.1', '-P', parts.port ?? '3306',
    '-u', parts['user id'] ?? parts.user ?? parts.uid, `-p${parts.password ?? parts.pwd ?? ''}`, '-e', sql], { encoding: 'utf8', timeout: 15_000 });
  const name = `wsbroker_js_${randomBytes(6).toString('hex')}`;
  const created = cli(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  if (created.error || created.status !== 0) {
    throw new Error(`cannot create MariaDB database ${name} at ${parts.server}:${parts.port} (run scripts/mariadb-up.sh): ${created.error?.message ?? created.stderr}`);
  }
  const connection = server.split(';').filter((kv) => kv && !/^\s*database\s*=/i.test(kv)).concat(`Database=${name}`).join(';');
  return { name, connection, drop: () => cli(`DROP DATABASE IF EXISTS \`${name}\``) };
}

/** Resolves when the broker knows `userId` (demo users are seeded through the user events just after start): polls
 * GET /api/me, as there is no event to wait for. */
export async function userKnown(baseUrl, userId, role, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const response = await fetch(`${baseUrl}/api/me`, { headers: { authorization: `Bearer ${token(userId, role)}` }, signal: AbortSignal.timeout(5000) });
    last = await response.text();
    if (response.status === 200 && JSON.parse(last).known === true) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${userId} not known to the broker after ${ms} ms: ${last}`);
}
