// Unit tests of the pages' connection (connection.js over the vendored @stomp/stompjs) with a fake WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, StompRejection } from '../connection.js';

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
