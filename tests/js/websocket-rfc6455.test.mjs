// RFC 6455 framing of the broker's own WebSocket transport (Broker:Transport=Pipeline, whatever the environment selects:
// the AspNetCore transport's framing is ASP.NET Core's), checked with an independent client (`ws`) and with raw frames
// written by hand on a TCP socket (the bad inputs no well-behaved client can send).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { randomBytes, createHash } from 'node:crypto';
import WebSocket from 'ws';
import { startBroker, token } from './broker.mjs';

let broker;
before(async () => {
  broker = await startBroker({ single: true, env: { WSBROKER_Broker__Transport: 'Pipeline' } });
});
after(async () => { await broker?.dispose(); });

const wait = 5000;

// ---- raw frames ------------------------------------------------------------------------------------------------------

/** A client frame: masked unless `masked` is false; `first` replaces byte 0 (reserved bits, odd opcodes). */
function frame(opcode, payload = Buffer.alloc(0), { fin = true, masked = true, first, length64 } = {}) {
  const body = Buffer.from(payload);
  let head;
  if (length64 !== undefined) { head = Buffer.alloc(10); head[1] = 127; head.writeBigUInt64BE(length64, 2); }
  else if (body.length <= 125) { head = Buffer.alloc(2); head[1] = body.length; }
  else if (body.length <= 0xffff) { head = Buffer.alloc(4); head[1] = 126; head.writeUInt16BE(body.length, 2); }
  else { head = Buffer.alloc(10); head[1] = 127; head.writeBigUInt64BE(BigInt(body.length), 2); }
  head[0] = first ?? ((fin ? 0x80 : 0) | opcode);
  if (!masked) return Buffer.concat([head, body]);
  head[1] |= 0x80;
  const mask = randomBytes(4);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

const text = (s, options) => frame(0x1, Buffer.from(s), options);
const closeFrame = (code, reason = Buffer.alloc(0)) => {
  const payload = Buffer.alloc(2 + reason.length);
  payload.writeUInt16BE(code, 0);
  Buffer.from(reason).copy(payload, 2);
  return frame(0x8, payload);
};

/** Upgrades a TCP connection by hand; resolves with the socket and a reader of the server's frames. `extra` is sent in
 * the same write as the request (frames pipelined behind it). */
function rawUpgrade(path, { protocol = 'v12.stomp', extra = Buffer.alloc(0) } = {}) {
  return new Promise((ok, fail) => {
    const key = randomBytes(16).toString('base64');
    const socket = tcpConnect(broker.port, '127.0.0.1');
    const timer = setTimeout(() => { socket.destroy(); fail(new Error('no 101 within 5 s')); }, wait);
    let buffered = Buffer.alloc(0);
    const frames = [];
    const waiters = [];
    let ended = false;
    const deliver = () => {
      while (waiters.length && (frames.length || ended)) waiters.shift()(frames.shift());
    };
    const parse = () => {
      while (buffered.length >= 2) {
        assert.equal(buffered[1] & 0x80, 0, 'server frames are never masked');
        let length = buffered[1] & 0x7f;
        let offset = 2;
        if (length === 126) { if (buffered.length < 4) return; length = buffered.readUInt16BE(2); offset = 4; }
        else if (length === 127) { if (buffered.length < 10) return; length = Number(buffered.readBigUInt64BE(2)); offset = 10; }
        if (buffered.length < offset + length) return;
        frames.push({ opcode: buffered[0] & 0x0f, fin: (buffered[0] & 0x80) !== 0, payload: buffered.subarray(offset, offset + length) });
        buffered = buffered.subarray(offset + length);
      }
    };
    let upgraded = false;
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!upgraded) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
        upgraded = true;
        clearTimeout(timer);
        if (!head.startsWith('HTTP/1.1 101')) { socket.destroy(); fail(new Error(head)); return; }
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        assert.match(head, new RegExp(`\\r\\nSec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}`, 'i'));
        ok({
          socket,
          send: (bytes) => socket.write(bytes),
          /** The next server frame, or undefined once the server closed the TCP connection. */
          next: () => new Promise((resolve, reject) => {
            const t = setTimeout(() => reject(new Error('no frame within 5 s')), wait);
            waiters.push((f) => { clearTimeout(t); resolve(f); });
            deliver();
          }),
          /** The status of the server's close frame (frames before it skipped); then the server ends the connection. */
          async closeCode() {
            for (let f = await this.next(); f; f = await this.next()) {
              if (f.opcode === 0x8) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
            }
            throw new Error('connection ended without a close frame');
          },
        });
      }
      parse();
      deliver();
    });
    socket.on('end', () => { ended = true; deliver(); });
    socket.on('close', () => { ended = true; deliver(); });
    socket.on('error', () => {});
    const headers = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${broker.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13'];
    if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    socket.write(Buffer.concat([Buffer.from(headers.join('\r\n') + '\r\n\r\n'), extra]));
  });
}

const connectFrame = (user) => `CONNECT\naccept-version:1.2\nheart-beat:0,0\nAuthorization:Bearer ${token(user)}\n\n\0`;

// ---- bad input: each closes the connection with its status ----------------------------------------------------------

const badInputs = [
  ['an unmasked client frame', text('SEND', { masked: false }), 1002],
  ['RSV1 without a negotiated extension', text('x', { first: 0xc1 }), 1002],
  ['RSV2', text('x', { first: 0xa1 }), 1002],
  ['RSV3', text('x', { first: 0x91 }), 1002],
  ['reserved data opcode 3', text('x', { first: 0x83 }), 1002],
  ['reserved control opcode 0xB', text('x', { first: 0x8b }), 1002],
  ['a 64-bit length with the high bit set', frame(0x2, Buffer.alloc(0), { length64: 0x8000000000000000n }), 1002],
  ['a ping of 126 bytes', frame(0x9, Buffer.alloc(126)), 1002],
  ['a fragmented ping', frame(0x9, Buffer.from('p'), { fin: false }), 1002],
  ['a continuation without a start', frame(0x0, Buffer.from('x')), 1002],
  ['a new message inside a fragmented one', Buffer.concat([text('a', { fin: false }), text('b')]), 1002],
  ['a close with a one-byte payload', frame(0x8, Buffer.from([3])), 1002],
  ['close code 999', closeFrame(999), 1002],
  ['close code 1004', closeFrame(1004), 1002],
  ['close code 1005', closeFrame(1005), 1002],
  ['close code 1006', closeFrame(1006), 1002],
  ['close code 1015', closeFrame(1015), 1002],
  ['close code 2999', closeFrame(2999), 1002],
  ['close code 5000', closeFrame(5000), 1002],
  ['invalid UTF-8 in a text frame', frame(0x1, Buffer.from([0x61, 0xc3, 0x28])), 1007],
  ['invalid UTF-8 split over fragments', Buffer.concat([frame(0x1, Buffer.from([0xe2, 0x82]), { fin: false }),
    frame(0x0, Buffer.from([0x28]))]), 1007],
  ['a text message ending inside a character', frame(0x1, Buffer.from([0x61, 0xe2, 0x82])), 1007],
  ['invalid UTF-8 in a close reason', closeFrame(1000, Buffer.from([0xff, 0xfe])), 1007],
];

for (const [name, bytes, code] of badInputs) {
  test(`bad input: ${name} closes with ${code}`, async () => {
    const peer = await rawUpgrade('/ws');
    peer.send(text(connectFrame('rfc')));
    const connected = await peer.next();
    assert.match(connected.payload.toString(), /^CONNECTED\n/);
    peer.send(bytes);
    assert.equal(await peer.closeCode(), code);
    assert.equal(await peer.next(), undefined, 'then the server ends the connection');
  });
}

// ---- the good paths ---------------------------------------------------------------------------------------------------

test('a ping is answered with a pong carrying its payload, between fragments too', async () => {
  const peer = await rawUpgrade('/ws', { extra: text(connectFrame('pinger')) });   // frames pipelined behind the request
  assert.match((await peer.next()).payload.toString(), /^CONNECTED\n/);
  peer.send(Buffer.concat([
    text('SUBSCRIBE\nid:1\ndestination:/topic/rfc-ping\n\n\0SEND\ndestination:/topic/rfc-ping\n\nhé', { fin: false }),
    frame(0x9, Buffer.from('are you there')),
    frame(0x0, Buffer.from('llo\0'))]));
  const pong = await peer.next();
  assert.deepEqual([pong.opcode, pong.payload.toString()], [0xa, 'are you there']);
  const message = await peer.next();
  assert.equal(message.opcode, 0x1);
  assert.match(message.payload.toString(), /^MESSAGE\n[^]*\n\nhéllo\0$/);
  peer.send(closeFrame(1000, Buffer.from('bye')));
  assert.equal(await peer.closeCode(), 1000);
});

/** A `ws` client with STOMP helpers. */
async function wsClient(url, protocols = ['v12.stomp']) {
  const ws = new WebSocket(url, protocols);
  const messages = [];
  const waiters = [];
  ws.on('message', (data, binary) => {
    messages.push({ data: Buffer.from(data), binary });
    while (waiters.length && messages.length) waiters.shift()(messages.shift());
  });
  const closed = new Promise((ok) => ws.on('close', (code, reason) => ok({ code, reason: reason.toString() })));
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); ws.once('unexpected-response', (_, res) => fail(new Error(`HTTP ${res.statusCode}`))); });
  return {
    ws, closed,
    next: () => new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error('no message within 5 s')), wait);
      waiters.push((m) => { clearTimeout(t); ok(m); });
      while (waiters.length && messages.length) waiters.shift()(messages.shift());
    }),
  };
}

test('ws: 16- and 64-bit lengths both ways, several STOMP frames in one message, binary and text', async () => {
  const c = await wsClient(broker.wsUrl);
  c.ws.send(connectFrame('lengths'));
  assert.match((await c.next()).data.toString(), /^CONNECTED\n/);
  c.ws.send('SUBSCRIBE\nid:1\ndestination:/topic/rfc-lengths\nreceipt:s\n\n\0');
  assert.match((await c.next()).data.toString(), /^RECEIPT\n/);
  const body = 'x'.repeat(30_000);
  const send = `SEND\ndestination:/topic/rfc-lengths\n\n${body}\0`;
  c.ws.send(Buffer.from(send.repeat(3)), { binary: true });              // 90 KB: a 64-bit length
  let received = '';
  while ((received.match(/\0/g) ?? []).length < 3) received += (await c.next()).data.toString();
  const frames = received.split('\0').filter((f) => f.length);
  assert.equal(frames.length, 3);
  for (const f of frames) assert.ok(f.startsWith('MESSAGE\n') && f.endsWith(`\n\n${body}`));
  c.ws.send('DISCONNECT\nreceipt:bye\n\n\0');
  assert.match((await c.next()).data.toString(), /^RECEIPT\nreceipt-id:bye/);
  assert.equal((await c.closed).code, 1000);
});

test('ws: a STOMP frame over the frame limit gets ERROR, then close 1009', async () => {
  const c = await wsClient(broker.wsUrl);
  c.ws.send(connectFrame('big'));
  await c.next();
  c.ws.send(`SEND\ndestination:/topic/rfc-big\n\n${'y'.repeat(70_000)}\0`);
  assert.match((await c.next()).data.toString(), /^ERROR\nmessage:frame too large/);
  assert.equal((await c.closed).code, 1009);
});

test('ws: a raw topic URL takes whole messages, answers in JSON, and closes an oversized one with 1009', async () => {
  const url = `${broker.wsUrl}/topic/rfc-raw?access_token=${token('rawuser')}`;
  const c = await wsClient(url, []);
  c.ws.send('first part, ', { fin: false });
  c.ws.send('second part', { fin: true });
  const replies = [JSON.parse((await c.next()).data), JSON.parse((await c.next()).data)];   // the delivery and the receipt
  assert.equal(replies.find((r) => r.body)?.body, 'first part, second part');
  assert.ok(replies.some((r) => r.receipt === '1'), JSON.stringify(replies));
  c.ws.send('z'.repeat(70_000));
  assert.deepEqual(JSON.parse((await c.next()).data), { error: 'message too large' });
  assert.equal((await c.closed).code, 1009);
});

test('the client closing first gets its status echoed', async () => {
  const c = await wsClient(broker.wsUrl);
  c.ws.send(connectFrame('closer'));
  await c.next();
  c.ws.close(4000, 'done here');
  assert.equal((await c.closed).code, 4000);
});

test('refusals keep their HTTP status; other requests on the same port are untouched', async () => {
  const status = (url, protocols) => new Promise((ok) => {
    const ws = new WebSocket(url, protocols);
    ws.on('unexpected-response', (_, res) => { ok(res.statusCode); ws.terminate(); });
    ws.on('open', () => { ok(101); ws.close(); });
    ws.on('error', () => {});
  });
  assert.equal(await status(broker.wsUrl, ['mqtt']), 400);
  assert.equal(await status(`${broker.wsUrl}/topic/x`, []), 401);
  assert.equal(await status(`${broker.wsUrl}/topic/a//b?access_token=${token('u')}`, []), 400);
  assert.equal(await status(`${broker.wsUrl}/topic/x?since=abc&access_token=${token('u')}`, []), 400);
  const plain = await fetch(`${broker.url}/ws`);
  assert.equal(plain.status, 400);
  assert.equal(plain.headers.get('content-type'), 'application/problem+json');
  assert.equal((await fetch(`${broker.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${broker.url}/metrics`)).status, 200);
});
