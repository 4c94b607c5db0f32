// Unit tests of the pages' connection (connection.js over the vendored @stomp/stompjs) with a fake WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, StompRejection, refreshDelay } from '../connection.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class FakeSocket {
  static all = [];
  constructor(url, protocols) { this.url = url; this.protocols = protocols; this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  send(data) { this.sent.push(typeof data === 'string' ? data : new TextDecoder().decode(data)); }
  close(code = 1000) { if (this.readyState === 3) return; this.readyState = 3; queueMicrotask(() => this.onclose?.({ code })); }
  open() { this.readyState = 1; this.onopen?.(); }
  receive(wire) { this.onmessage?.({ data: wire }); }
  frames(command) { return this.sent.filter((s) => s.startsWith(command + '\n')); }
  header(command, name, index = -1) { return new RegExp(`^${name}:(.*)$`, 'm').exec(this.frames(command).at(index))?.[1]; }
}

const until = async (predicate, ms = 2000) => {
  for (const end = Date.now() + ms; !predicate(); await sleep(5)) if (Date.now() > end) throw new Error('timed out');
};

function newConnection(options = {}) {
  FakeSocket.all = [];
  const connection = new Connection({ url: 'ws://broker/ws', token: 'tok', WebSocket: FakeSocket, heartbeat: [0, 0], reconnectDelay: 20, connectionTimeout: 0, ...options });
  return { connection, socket: () => FakeSocket.all.at(-1) };
}

/** disconnect(), answering its DISCONNECT like a broker. */
async function bye({ connection, socket }) {
  const done = connection.disconnect();
  const receipt = socket().header('DISCONNECT', 'receipt');
  if (receipt) socket().receive(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
  await done;
}

async function connected(options) {
  const ctx = newConnection(options);
  const done = ctx.connection.connect();
  await until(() => FakeSocket.all.length === 1);
  ctx.socket().open();
  ctx.socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\nuser-name:u1\n\n\0');
  await done;
  return ctx;
}

test('connect sends the token in the URL and in CONNECT, subscribes the errors queue, and resolves on CONNECTED', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  assert.equal(socket().url, 'ws://broker/ws?access_token=tok');
  assert.deepEqual(socket().protocols, ['v12.stomp']);
  assert.equal(socket().header('CONNECT', 'Authorization'), 'Bearer tok');
  assert.equal(socket().header('SUBSCRIBE', 'destination', 0), '/user/queue/errors');
  assert.equal(connection.state, 'connected');
  assert.equal(connection.user, 'u1');
  await bye(ctx);
});

test('subscribe delivers messages to the callback; unsubscribe stops them', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  const got = [];
  const sub = connection.subscribe('/topic/x', (f) => got.push(f.body), { since: '5' });
  assert.equal(socket().header('SUBSCRIBE', 'since'), '5');
  socket().receive(`MESSAGE\nsubscription:${sub.id}\ndestination:/topic/x\nmessage-id:1\n\nhello\0`);
  sub.unsubscribe();
  assert.equal(socket().header('UNSUBSCRIBE', 'id'), sub.id);
  socket().receive(`MESSAGE\nsubscription:${sub.id}\ndestination:/topic/x\nmessage-id:2\n\nlate\0`);
  assert.deepEqual(got, ['hello']);
  await bye(ctx);
});

test('send resolves with the RECEIPT (and its message-id) and rejects on a /user/queue/errors rejection with its receipt-id', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  const ok = connection.send('/topic/a', 'x', { 'client-msg-id': 'abc' });
  const receipt = socket().header('SEND', 'receipt', 0);
  assert.equal(socket().header('SEND', 'client-msg-id', 0), 'abc');
  socket().receive(`RECEIPT\nreceipt-id:${receipt}\nmessage-id:42\n\n\0`);
  assert.equal((await ok).headers['message-id'], '42');
  const bad = connection.send('/topic/private-chat/a/b', 'y');
  const receipt2 = socket().header('SEND', 'receipt', 1);
  socket().receive(`MESSAGE\nsubscription:__errors\ndestination:/user/queue/errors\nmessage-id:9\nmessage:could-not-send-message\\c receiver unknown\nreceipt-id:${receipt2}\n\n\0`);
  await assert.rejects(bad, (e) => e instanceof StompRejection && e.message === 'could-not-send-message: receiver unknown');
  await bye(ctx);
});

test('an ERROR rejects the matching send', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  const errors = [];
  connection.on('error', (e) => errors.push(e.message));
  const p = connection.send('/topic/a', 'x');
  socket().receive(`ERROR\nmessage:frame too large\nreceipt-id:${socket().header('SEND', 'receipt')}\n\n\0`);
  await assert.rejects(p, /frame too large/);
  assert.deepEqual(errors, ['frame too large']);
  await bye(ctx);
});

test('after a lost connection: reconnects, re-subscribes with headers of now (since:), resends the unanswered with the same client-msg-id', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  const states = [];
  connection.on('state', (s) => states.push(s));
  let since = '0';
  connection.subscribe('/topic/keep', () => {}, () => ({ since }));
  assert.equal(socket().header('SUBSCRIBE', 'since'), '0');
  const unanswered = connection.send('/topic/a', 'resend me', { 'client-msg-id': 'cm1' });
  const typingFailed = assert.rejects(connection.send('/topic/typing/x', '{}', {}, { resend: false }), /disconnected/);
  const firstReceipt = socket().header('SEND', 'receipt', 0);
  since = '77';                                                  // what the page holds by the time of the drop
  socket().close(1006);
  await until(() => connection.state === 'reconnecting');
  await typingFailed;                                            // a send that is not resent fails at the drop
  await assert.rejects(connection.send('/topic/typing/x', '{}', {}, { resend: false }), /not connected/);
  await until(() => FakeSocket.all.length === 2);
  socket().open();
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
  const subscribes = socket().frames('SUBSCRIBE');
  assert.match(subscribes[0], /destination:\/user\/queue\/errors/, 'the errors queue first');
  assert.match(subscribes[1], /destination:\/topic\/keep/);
  assert.equal(socket().header('SUBSCRIBE', 'since', 1), '77', 'resumes from the last id held');
  const resent = socket().frames('SEND');
  assert.equal(resent.length, 1, 'only the message that asked for resending');
  assert.match(resent[0], /resend me/);
  assert.equal(socket().header('SEND', 'client-msg-id', 0), 'cm1', 'the same client-msg-id');
  assert.equal(socket().header('SEND', 'receipt', 0), firstReceipt);
  socket().receive(`RECEIPT\nreceipt-id:${firstReceipt}\nmessage-id:78\n\n\0`);
  assert.equal((await unanswered).headers['message-id'], '78');
  assert.deepEqual(states, ['reconnecting', 'connected']);
  await bye(ctx);
});

test('a silent server (no heart-beats) is dropped and the connection comes back', async () => {
  const ctx = newConnection({ heartbeat: [50, 50] });
  const { connection, socket } = ctx;
  const done = connection.connect();
  await until(() => FakeSocket.all.length === 1);
  socket().open();
  assert.equal(socket().header('CONNECT', 'heart-beat'), '50,50');
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:50,50\n\n\0');
  await done;
  await until(() => socket().sent.includes('\n'), 1000);          // our beats go out
  await until(() => FakeSocket.all.length === 2, 2000);            // nothing came back for 2 x 50 ms: a new socket
  assert.notEqual(connection.state, 'connected');
  await bye(ctx);
});

test('a rejected token stops reconnecting and rejects connect()', async () => {
  const { connection, socket } = newConnection();
  const done = connection.connect();
  await until(() => FakeSocket.all.length === 1);
  socket().open();
  socket().receive('ERROR\nmessage:authentication failed: token expired\n\n\0');
  socket().close(1008);
  await assert.rejects(done, /authentication failed/);
  await sleep(100);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(connection.state, 'offline');
});

test('disconnect sends DISCONNECT with a receipt, closes and stays offline', async () => {
  const ctx = await connected();
  const { connection, socket } = ctx;
  const pending = connection.send('/topic/a', 'x');
  const bye = connection.disconnect();
  const receipt = socket().header('DISCONNECT', 'receipt');
  assert.ok(receipt);
  socket().receive(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
  await bye;
  await assert.rejects(pending, /disconnected/);
  assert.equal(socket().readyState, 3);
  await sleep(100);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(connection.state, 'offline');
});

// ---- long-lived sessions: the token refreshed before exp ---------------------------------------------------------------

/** An unsigned JWT-shaped token (the client only reads its times); `exp`/`iat` in seconds, fractions allowed. */
const jwt = (claims) => `e30.${Buffer.from(JSON.stringify({ sub: 'u1', ...claims })).toString('base64url')}.sig`;
const expiringIn = (ms, lifetimeMs = ms) => jwt({ exp: (Date.now() + ms) / 1000, iat: (Date.now() + ms - lifetimeMs) / 1000 });

test('refreshDelay: 80% of the lifetime or 30 s before exp, whichever is sooner, never before half of what is left', () => {
  const now = 1_000_000_000_000;
  const at = (exp, iat) => refreshDelay(jwt({ exp: exp / 1000, iat: iat === undefined ? undefined : iat / 1000 }), now);
  assert.equal(at(now + 12 * 3600_000, now), 34_560_000);                   // 12 h: at 80% (9.6 h)
  assert.equal(at(now + 60_000, now), 30_000);                              // 60 s: 30 s before exp
  assert.equal(at(now + 3000, now), 1500);                                  // 3 s: half of it, not at once
  assert.equal(at(now + 60_000, now - 11 * 3600_000), 30_000);              // an old 11 h token with a minute left
  assert.equal(at(now + 100_000), 70_000);                                  // no iat: the lifetime is what is left
  assert.equal(at(now - 1), 0);                                             // expired: now
  assert.equal(refreshDelay(jwt({}), now), null);                           // no exp: never
  assert.equal(refreshDelay('not a token', now), null);
});

test('before exp: refreshToken is asked, its token SENT to /session/token with a receipt, and used from the RECEIPT on', async () => {
  const first = expiringIn(200);
  const second = expiringIn(3600_000);
  const asked = [], adopted = [];
  const ctx = await connected({ token: first, refreshToken: async (current) => { asked.push(current); return second; } });
  const { connection, socket } = ctx;
  connection.on('token', (t) => adopted.push(t));
  await until(() => socket().frames('SEND').length === 1);
  assert.deepEqual(asked, [first]);
  assert.equal(socket().header('SEND', 'destination'), '/session/token');
  assert.equal(socket().header('SEND', 'authorization'), `Bearer ${second}`);
  assert.deepEqual(adopted, [], 'not before the broker took it');
  socket().receive(`RECEIPT\nreceipt-id:${socket().header('SEND', 'receipt')}\n\n\0`);
  await until(() => adopted.length === 1);
  assert.equal(adopted[0], second);
  socket().close(1006);                                                      // a later reconnect uses the new token
  await until(() => FakeSocket.all.length === 2);
  socket().open();
  assert.equal(socket().url, `ws://broker/ws?access_token=${second}`);
  assert.equal(socket().header('CONNECT', 'Authorization'), `Bearer ${second}`);
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
  await until(() => connection.state === 'connected');
  assert.deepEqual(asked, [first], 'a token far from exp is not refreshed again');
  await bye(ctx);
});

for (const error of ['token refresh refused: the token is for another user', 'token expired']) {
  test(`after ERROR "${error}" the connection comes back with a fresh token`, async () => {
    const tokens = [expiringIn(150), expiringIn(3600_000), expiringIn(7200_000)];
    let next = 1;
    const ctx = await connected({ token: tokens[0], refreshToken: async () => tokens[next++] });
    const { connection, socket } = ctx;
    const states = [];
    connection.on('state', (s) => states.push(s));
    await until(() => socket().frames('SEND').length === 1);
    const receipt = socket().header('SEND', 'receipt');
    socket().receive(`ERROR\nmessage:${error}\n${error === 'token expired' ? '' : `receipt-id:${receipt}\n`}\n\0`);
    socket().close(1008);
    await until(() => FakeSocket.all.length === 2);
    socket().open();
    assert.equal(socket().header('CONNECT', 'Authorization'), `Bearer ${tokens[2]}`, 'a fresh token, not the refused one');
    socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
    await until(() => connection.state === 'connected');
    assert.deepEqual(states, ['reconnecting', 'connected']);
    await bye(ctx);
  });
}

test('a refreshToken that fails or returns no JWT is asked again later; the session is kept meanwhile', async () => {
  const answers = [() => { throw new Error('offline'); }, () => 'not-a-jwt', () => expiringIn(3600_000)];
  const failures = [];
  const ctx = await connected({ token: expiringIn(100, 100), refreshToken: async () => answers.shift()() });
  const { connection, socket } = ctx;
  connection.on('refresh-failed', (e) => failures.push(e.message));
  await until(() => failures.length === 1);
  assert.deepEqual(failures, ['offline']);
  assert.equal(socket().frames('SEND').length, 0);
  assert.equal(FakeSocket.all.length, 1, 'no reconnect for a refresh that could not start');
  await until(() => socket().frames('SEND').length === 1, 4000);           // asked again (after a second, twice)
  assert.deepEqual(failures, ['offline', 'refreshToken did not return a JWT']);
  await bye(ctx);
});

test('without refreshToken nothing is sent to /session/token', async () => {
  const ctx = await connected({ token: expiringIn(100) });
  await sleep(250);
  assert.equal(ctx.socket().frames('SEND').length, 0);
  await bye(ctx);
});
