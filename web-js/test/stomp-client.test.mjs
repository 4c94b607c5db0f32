// Unit tests of the STOMP client module with a fake WebSocket and fake timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StompClient, FrameParser, encodeFrame, escapeHeader, unescapeHeader, StompRejection } from '../stomp-client.js';

const text = (bytes) => new TextDecoder().decode(bytes);

class FakeSocket {
  static all = [];
  constructor(url, protocols) { this.url = url; this.protocols = protocols; this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  send(data) { this.sent.push(typeof data === 'string' ? data : text(data)); }
  close(code = 1000) { if (this.readyState === 3) return; this.readyState = 3; this.onclose?.({ code }); }
  open() { this.readyState = 1; this.onopen?.(); }
  receive(wire) { this.onmessage?.({ data: new TextEncoder().encode(wire).buffer }); }
  frames(command) { return this.sent.filter((s) => s.startsWith(command + '\n')); }
}

function fakeTimers() {
  const timers = [];
  let now = 0;
  const api = {
    setTimeout: (fn, ms) => { const t = { fn, at: now + ms }; timers.push(t); return t; },
    clearTimeout: (t) => { const i = timers.indexOf(t); if (i >= 0) timers.splice(i, 1); },
    setInterval: (fn, ms) => { const t = { fn, at: now + ms, every: ms }; timers.push(t); return t; },
    clearInterval: (t) => api.clearTimeout(t),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        now = due.at;
        if (due.every) due.at += due.every; else timers.splice(timers.indexOf(due), 1);
        due.fn();
      }
      now = end;
    },
    get pending() { return timers.length; },
  };
  return api;
}

function newClient(options = {}) {
  FakeSocket.all = [];
  const timers = fakeTimers();
  const client = new StompClient({ url: 'ws://broker/ws', token: 'tok', WebSocket: FakeSocket, timers, heartbeat: [0, 0], random: () => 0.5, ...options });
  return { client, timers, socket: () => FakeSocket.all.at(-1) };
}

async function connected(options) {
  const ctx = newClient(options);
  const done = ctx.client.connect();
  ctx.socket().open();
  ctx.socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\nuser-name:u1\n\n\0');
  await done;
  return ctx;
}

test('escaping round-trips every special character and rejects undefined escapes', () => {
  const value = 'a:b\\c\nd\re';
  assert.equal(escapeHeader(value), 'a\\cb\\\\c\\nd\\re');
  assert.equal(unescapeHeader(escapeHeader(value)), value);
  assert.throws(() => unescapeHeader('bad\\t'), /invalid escape/);
});

test('encodeFrame writes content-length and NUL; CONNECT headers are not escaped', () => {
  assert.equal(text(encodeFrame('SEND', { destination: '/topic/a:b' }, 'hé')), 'SEND\ndestination:/topic/a\\cb\ncontent-length:3\n\nhé\0');
  assert.equal(text(encodeFrame('CONNECT', { host: 'a:b' })), 'CONNECT\nhost:a:b\n\n\0');
});

test('the parser handles frames split across messages, several per message, heart-beats and NUL bodies', () => {
  const parser = new FrameParser();
  const wire = '\nMESSAGE\ndestination:/t\ncontent-length:3\n\na\0b\0\r\nRECEIPT\nreceipt-id:x\n\n\0';
  const frames = [];
  let beats = 0;
  for (let i = 0; i < wire.length; i += 5) {
    const result = parser.push(wire.slice(i, i + 5));
    frames.push(...result.frames);
    beats += result.beats;
  }
  assert.deepEqual(frames.map((f) => f.command), ['MESSAGE', 'RECEIPT']);
  assert.deepEqual([...frames[0].body], [97, 0, 98]);
  assert.equal(frames[1].headers['receipt-id'], 'x');
  assert.equal(beats, 2);
});

test('connect sends the token in the URL and in CONNECT, and resolves on CONNECTED', async () => {
  const { client, socket } = await connected();
  assert.equal(socket().url, 'ws://broker/ws?access_token=tok');
  assert.deepEqual(socket().protocols, ['v12.stomp']);
  assert.match(socket().frames('CONNECT')[0], /Authorization:Bearer tok/);
  assert.equal(client.state, 'connected');
  assert.equal(client.user, 'u1');
});

test('subscribe delivers messages to the callback; unsubscribe stops them', async () => {
  const { client, socket } = await connected();
  const got = [];
  const sub = client.subscribe('/topic/x', (f) => got.push(f.text));
  const id = /id:(sub-\d+)/.exec(socket().frames('SUBSCRIBE').at(-1))[1];
  socket().receive(`MESSAGE\nsubscription:${id}\ndestination:/topic/x\nmessage-id:1\n\nhello\0`);
  sub.unsubscribe();
  assert.match(socket().frames('UNSUBSCRIBE')[0], new RegExp(`id:${id}`));
  socket().receive(`MESSAGE\nsubscription:${id}\ndestination:/topic/x\nmessage-id:2\n\nlate\0`);
  assert.deepEqual(got, ['hello']);
});

test('send resolves on RECEIPT and rejects on a /user/queue/errors rejection with its receipt-id', async () => {
  const { client, socket } = await connected();
  const ok = client.send('/topic/a', 'x');
  const receipt = /receipt:(r-\d+)/.exec(socket().frames('SEND')[0])[1];
  socket().receive(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
  await ok;
  const bad = client.send('/topic/private-chat/a/b', 'y');
  const receipt2 = /receipt:(r-\d+)/.exec(socket().frames('SEND')[1])[1];
  socket().receive(`MESSAGE\nsubscription:__errors\ndestination:/user/queue/errors\nmessage-id:9\nmessage:could-not-send-message\\c receiver unknown\nreceipt-id:${receipt2}\n\n\0`);
  await assert.rejects(bad, (e) => e instanceof StompRejection && e.message === 'could-not-send-message: receiver unknown');
});

test('an ERROR rejects the matching send', async () => {
  const { client, socket } = await connected();
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const p = client.send('/topic/a', 'x');
  const receipt = /receipt:(r-\d+)/.exec(socket().frames('SEND')[0])[1];
  socket().receive(`ERROR\nmessage:frame too large\nreceipt-id:${receipt}\n\n\0`);
  await assert.rejects(p, /frame too large/);
  assert.deepEqual(errors, ['frame too large']);
});

test('after a lost connection it reconnects with back-off, re-subscribes and resends what was not receipted', async () => {
  const { client, socket, timers } = await connected({ reconnectDelay: 100 });
  const states = [];
  client.on('state', (s) => states.push(s));
  client.subscribe('/topic/keep', () => {});
  const unreceipted = client.send('/topic/a', 'resend me');
  const typing = client.send('/topic/typing/x', '{}', {}, { resend: false });
  const first = socket();
  first.close(1006);
  assert.equal(client.state, 'reconnecting');
  timers.advance(49);
  assert.equal(FakeSocket.all.length, 1, 'waits for the back-off (100 ms with jitter: 75 ms)');
  timers.advance(30);
  assert.equal(FakeSocket.all.length, 2);
  socket().open();
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
  assert.ok(socket().frames('SUBSCRIBE').some((f) => f.includes('destination:/topic/keep')), 're-subscribed');
  assert.ok(socket().frames('SUBSCRIBE').some((f) => f.includes('destination:/user/queue/errors')), 'errors queue');
  const resent = socket().frames('SEND');
  assert.equal(resent.length, 1, 'only the message that asked for resending');
  assert.match(resent[0], /resend me/);
  const receipt = /receipt:(r-\d+)/.exec(resent[0])[1];
  socket().receive(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
  await unreceipted;
  assert.deepEqual(states, ['reconnecting', 'connected']);
  // A send that is not resent fails at the drop instead of staying pending forever.
  await assert.rejects(typing, /disconnected/);
});

test('back-off grows exponentially up to the maximum', async () => {
  const { client, socket, timers } = await connected({ reconnectDelay: 100, maxReconnectDelay: 400, random: () => 1 });
  const delays = [];
  client.on('state', (s, detail) => { if (s === 'reconnecting') delays.push(detail.delay); });
  for (let i = 0; i < 4; i++) {
    socket().close(1006);
    timers.advance(1000);
  }
  assert.deepEqual(delays, [100, 200, 400, 400]);
});

test('heart-beats: sends EOLs at the negotiated rate and closes when the server falls silent', async () => {
  const { client, socket, timers } = newClient({ heartbeat: [1000, 1000] });
  const done = client.connect();
  socket().open();
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:2000,2000\n\n\0');
  await done;
  timers.advance(2000);
  assert.equal(socket().sent.filter((s) => s === '\n').length, 1, 'one beat after max(1000, 2000) ms');
  const first = socket();
  client.lastReceived = Date.now() - 10_000;       // the server has said nothing for 10 s (> 2 × 2000)
  timers.advance(2000);
  assert.equal(first.readyState, 3, 'closed for heart-beat timeout');
  assert.equal(client.state, 'reconnecting');
});

test('a heart-beat timeout reconnects at once, without waiting for the dead socket to finish closing', async () => {
  const { client, socket, timers } = newClient({ heartbeat: [1000, 1000], reconnectDelay: 100 });
  const done = client.connect();
  socket().open();
  socket().receive('CONNECTED\nversion:1.2\nheart-beat:1000,1000\n\n\0');
  await done;
  const dead = socket();
  dead.close = function (code) { this.closeCalledWith = code; };   // a half-open link: 'close' never comes
  client.lastReceived = Date.now() - 10_000;
  timers.advance(1000);
  assert.equal(dead.closeCalledWith, 4000);
  assert.equal(client.state, 'reconnecting');
  timers.advance(200);
  assert.equal(FakeSocket.all.length, 2, 'a new socket, although the old one never reported close');
  dead.onclose?.({ code: 1006 });                                 // a late close of the dead socket changes nothing
  assert.equal(FakeSocket.all.length, 2);
});

test('a rejected token stops reconnecting and rejects connect()', async () => {
  const { client, socket, timers } = newClient();
  const done = client.connect();
  socket().open();
  socket().receive('ERROR\nmessage:authentication failed: token expired\n\n\0');
  socket().close(1008);
  await assert.rejects(done, /authentication failed/);
  timers.advance(60_000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(client.state, 'offline');
});

test('disconnect sends DISCONNECT with a receipt, closes and stays offline', async () => {
  const { client, socket, timers } = await connected();
  const bye = client.disconnect();
  const frame = socket().frames('DISCONNECT')[0];
  const receipt = /receipt:(bye-\d+)/.exec(frame)[1];
  socket().receive(`RECEIPT\nreceipt-id:${receipt}\n\n\0`);
  await bye;
  assert.equal(socket().readyState, 3);
  timers.advance(60_000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(client.state, 'offline');
});
