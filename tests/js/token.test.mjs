// Long-lived sessions (docs/design.md §3 "Long-lived sessions") through @stomp/stompjs: a session lives as long as its
// token (exp + Auth:ClockSkewSeconds, 0 here) and is refreshed in band with a SEND to /session/token.
// The heart-beat settings make the broker's scanner tick once a second, so a delivery after the expiry instant would not
// be hidden by a quick scan: the broker must hold back what was queued before it by itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, token, until } from './broker.mjs';

let broker;
before(async () => {
  broker = await startBroker({ args: ['--Auth:ClockSkewSeconds=0', '--Broker:HeartBeatSendMs=10000', '--Broker:HeartBeatReceiveMs=10000'] });
});
after(async () => { await broker?.dispose(); });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => randomBytes(4).toString('hex');
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A connected stompjs client with `jwt`; `stompError` resolves with the first ERROR, `closed` with the socket's close. */
async function connect(jwt) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(broker.wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${jwt}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  client.stompError = new Promise((resolve) => { client.onStompError = (frame) => resolve({ frame, at: Date.now() }); });
  client.closed = new Promise((resolve) => { client.onWebSocketClose = (event) => resolve({ code: event.code, reason: event.reason, at: Date.now() }); });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('connect timed out')), 5000);
    client.onConnect = () => { clearTimeout(timer); ok(); };
    client.closed.then(() => { clearTimeout(timer); fail(new Error('closed before CONNECTED')); });
    client.activate();
  });
  return client;
}

/** Subscribes; resolves once the broker's RECEIPT says the subscription is in place. */
function subscribed(client, destination, onMessage) {
  return new Promise((ok) => {
    const receipt = `sub-${unique()}`;
    client.watchForReceipt(receipt, () => ok());
    client.subscribe(destination, onMessage, { receipt });
  });
}

/** SENDs `headers` to /session/token with a receipt; resolves with the RECEIPT, or rejects with the ERROR's message. */
function refresh(client, headers) {
  const receipt = `refresh-${unique()}`;
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no answer to ${receipt}`)), 5000);
    client.watchForReceipt(receipt, (frame) => { clearTimeout(timer); ok(frame); });
    client.stompError.then(({ frame }) => {
      clearTimeout(timer);
      fail(Object.assign(new Error(frame.headers.message), { receiptId: frame.headers['receipt-id'] }));
    });
    client.publish({ destination: '/session/token', headers: { ...headers, receipt } });
  });
}

const bearer = (jwt) => ({ authorization: `Bearer ${jwt}` });

/** A publisher sending its clock (Date.now()) to `destination` every `everyMs`; stop() ends it. */
async function publishing(destination, everyMs) {
  const publisher = await connect(token(`pub-${unique()}`));
  const timer = setInterval(() => publisher.publish({ destination, body: String(Date.now()) }), everyMs);
  return { stop: async () => { clearInterval(timer); await publisher.deactivate(); } };
}

test('a 3 s token without a refresh: ERROR token expired at exp, close 4001, and no MESSAGE delivered after expiry', { timeout: 30_000 }, async () => {
  const destination = `/topic/token-test/${unique()}`;
  const exp = nowSeconds() + 3;
  const session = await connect(token(`expiring-${unique()}`, 'client', { exp }));
  const got = [];
  await subscribed(session, destination, (m) => got.push({ at: Date.now(), publishedAt: Number(m.body) }));
  const publisher = await publishing(destination, 20);
  let error, closed;
  try {
    error = await session.stompError;
    closed = await session.closed;
  } finally { await publisher.stop(); }
  const expMs = exp * 1000;
  assert.equal(error.frame.headers.message, 'token expired');
  assert.ok(error.at >= expMs - 20, `ERROR ${expMs - error.at} ms before exp`);
  assert.ok(error.at <= expMs + 3000, `ERROR ${error.at - expMs} ms after exp`);   // the scanner's 1 s tick, and room
  assert.equal(closed.code, 4001);
  assert.equal(closed.reason, 'token expired');
  assert.ok(got.length >= 20, `the session received while its token was valid (${got.length})`);
  // What was published after the instant reached the broker after it: no such message may be sent (20 ms: the broker's
  // monotonic clock against this wall clock). What was queued before it and sent late would arrive late: 1.5 s leaves room
  // for this process being slow to read (the exact check is Broker.Tests' Expiry_DeliveriesQueuedBeforeTheInstant_…).
  assert.deepEqual(got.filter((m) => m.publishedAt > expMs + 20).map((m) => m.publishedAt - expMs), [], 'published after exp, still delivered (ms after exp)');
  assert.deepEqual(got.filter((m) => m.at > expMs + 1500).map((m) => m.at - expMs), [], 'received long after exp (ms after exp)');
});

test('with a refresh every second, a session with 3 s tokens lives for 10 s and keeps receiving', { timeout: 30_000 }, async () => {
  const destination = `/topic/token-test/${unique()}`;
  const user = `refreshing-${unique()}`;
  const start = nowSeconds();
  const session = await connect(token(user, 'client', { exp: start + 3 }));
  const got = [];
  await subscribed(session, destination, () => got.push(Date.now()));
  const publisher = await publishing(destination, 100);
  try {
    for (let k = 1; k <= 10; k++) {
      // Refresh k at start + k + 0.3 s, whatever the round trips before it took: the token it replaces (exp start + 2 + k)
      // has 1.7 s left, and a slow round trip does not add up over the ten.
      await sleep(Math.max(0, (start + k) * 1000 + 300 - Date.now()));
      const receipt = await refresh(session, bearer(token(user, 'client', { exp: start + 3 + k })));
      assert.ok(receipt.headers['receipt-id'].startsWith('refresh-'));
      assert.ok(got.some((at) => at > Date.now() - 2000), `no message in the two seconds before refresh ${k}`);
    }
  } finally { await publisher.stop(); }
  assert.ok(Date.now() > (start + 3) * 1000 + 6000, 'alive well past the first token');
  assert.ok(session.connected, 'still connected');
  await session.deactivate();
});

test('a refresh with another user\'s token: ERROR with the receipt-id, and the session closes', { timeout: 30_000 }, async () => {
  const session = await connect(token(`alice-${unique()}`));
  await assert.rejects(refresh(session, bearer(token(`mallory-${unique()}`, 'client', { expiresIn: 7200 }))),
    (e) => e.message === 'token refresh refused: the token is for another user' && e.receiptId.startsWith('refresh-'));
  assert.equal((await session.closed).code, 1008);
});

test('a refresh with an expired, garbage, earlier-expiring or foreign-signed token, or without one, closes the session', { timeout: 30_000 }, async () => {
  const cases = [
    [(user) => bearer(token(user, 'client', { exp: nowSeconds() - 10 })), 'token refresh refused: token expired'],
    [() => bearer('garbage.not.a-jwt'), 'token refresh refused: invalid token'],
    [() => bearer('garbage'), 'token refresh refused: malformed token'],
    [(user) => bearer(token(user, 'client', { expiresIn: 60 })), 'token refresh refused: the token does not expire later than the current one'],
    [(user) => bearer(token(user, 'client', { expiresIn: 7200, key: 'k'.repeat(48) })), 'token refresh refused: invalid signature'],
    [() => ({}), 'token refresh refused: send the new token as authorization:Bearer <JWT>'],
  ];
  for (const [headers, message] of cases) {
    const user = `bad-refresh-${unique()}`;
    const session = await connect(token(user, 'client', { expiresIn: 3600 }));
    await assert.rejects(refresh(session, headers(user)), (e) => { assert.equal(e.message, message); return e.receiptId.startsWith('refresh-'); });
    assert.equal((await session.closed).code, 1008, message);
  }
});

test('SUBSCRIBE to /session/token is an ERROR', { timeout: 30_000 }, async () => {
  const session = await connect(token(`sub-${unique()}`));
  session.subscribe('/session/token', () => {}, { receipt: 'sub-token' });
  const { frame } = await session.stompError;
  assert.equal(frame.headers.message, 'cannot subscribe to /session/token: SEND a new token to it');
  assert.equal(frame.headers['receipt-id'], 'sub-token');
});

test('a raw topic URL closes with 4001 "token expired" at its token\'s expiry', { timeout: 30_000 }, async () => {
  const exp = nowSeconds() + 3;
  const socket = new WebSocket(`${broker.url.replace('http://', 'ws://')}/ws/topic/token-test/${unique()}?access_token=${token(`raw-${unique()}`, 'client', { exp })}`);
  const received = [];
  socket.on('message', (data) => received.push(String(data)));
  const closed = await new Promise((resolve, reject) => {
    socket.on('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() }));
    socket.on('error', reject);
  });
  assert.deepEqual({ code: closed.code, reason: closed.reason }, { code: 4001, reason: 'token expired' });
  assert.ok(closed.at >= exp * 1000 - 20, `closed ${exp * 1000 - closed.at} ms before exp`);
  await until(() => received.length > 0, 1000, 'the JSON error');
  assert.deepEqual(received.map((r) => JSON.parse(r)), [{ error: 'token expired' }]);
});
