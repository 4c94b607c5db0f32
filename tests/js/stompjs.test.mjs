// @stomp/stompjs, a real third-party STOMP client, against a running WsBroker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, freePort, token, until } from './broker.mjs';

let broker;
before(async () => { broker = await startBroker(); });
after(async () => { await broker?.dispose(); });

/** A connected stompjs client; `options` override the defaults. Rejects on STOMP ERROR or timeout. */
function connect(user, role, options = {}, url = broker.wsUrl) {
  const debug = [];
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders: { Authorization: `Bearer ${token(user, role)}` },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: (line) => debug.push(line),
    ...options,
  });
  client.debugLines = debug;
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`connect timed out\n${debug.join('\n')}`)), 5000);
    client.onConnect = (frame) => { clearTimeout(timer); client.connectedFrame = frame; ok(client); };
    client.onStompError = (frame) => { clearTimeout(timer); fail(new Error(`STOMP ERROR: ${frame.headers.message}`)); };
    client.onWebSocketClose = (event) => { clearTimeout(timer); fail(new Error(`socket closed (${event.code}) before CONNECTED`)); };
    client.activate();
  });
}

test('connects with a JWT and gets the CONNECTED headers', async () => {
  const client = await connect('alice', 'client');
  try {
    const headers = client.connectedFrame.headers;
    assert.equal(headers.version, '1.2');
    assert.equal(headers['user-name'], 'alice');
    assert.ok(headers.session, 'session header');
    assert.ok(headers.server, 'server header');
  } finally { await client.deactivate(); }
});

test('a CONNECT with a bad token gets ERROR and no connection', async () => {
  const client = new Client({
    webSocketFactory: () => new WebSocket(broker.wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${token('mallory', 'client', { key: 'x'.repeat(40) })}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  const error = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('no ERROR within 5 s')), 5000);
    client.onStompError = (frame) => { clearTimeout(timer); ok(frame); };
    client.onConnect = () => { clearTimeout(timer); fail(new Error('connected with a forged token')); };
    client.activate();
  });
  await client.deactivate();
  assert.match(error.headers.message, /authentication failed/);
});

test('subscribe and publish: every subscriber gets the message with its headers and body', async () => {
  const publisher = await connect('pub', 'client');
  const a = await connect('sub-a', 'client');
  const b = await connect('sub-b', 'client');
  try {
    const gotA = [], gotB = [];
    a.subscribe('/topic/js/news', (m) => gotA.push(m));
    b.subscribe('/topic/js/*', (m) => gotB.push(m));
    // A receipt on a later frame proves the SUBSCRIBEs before it were processed (frames are handled in order).
    await Promise.all([a, b].map((c) => new Promise((ok) => {
      const receipt = `sync-${Math.random()}`;
      c.watchForReceipt(receipt, ok);
      c.publish({ destination: '/topic/js.sync', headers: { receipt } });
    })));
    publisher.publish({ destination: '/topic/js/news', body: 'héllo wörld', headers: { 'content-type': 'text/plain', 'x-custom': 'a:b' } });
    await until(() => gotA.length === 1 && gotB.length === 1, 5000, 'both deliveries');
    for (const m of [gotA[0], gotB[0]]) {
      assert.equal(m.body, 'héllo wörld');
      assert.equal(m.headers.destination, '/topic/js/news');
      assert.equal(m.headers['content-type'], 'text/plain');
      assert.equal(m.headers['x-custom'], 'a:b');
      assert.match(m.headers['message-id'], /^\d+$/);
    }
    assert.equal(gotA[0].headers['message-id'], gotB[0].headers['message-id']);
  } finally { await Promise.all([publisher, a, b].map((c) => c.deactivate())); }
});

test('binary bodies arrive byte for byte', async () => {
  const client = await connect('bin', 'client');
  try {
    const got = [];
    client.subscribe('/topic/js.binary', (m) => got.push(m));
    const body = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
    body[10] = 0;
    await new Promise((ok) => { client.watchForReceipt('r-bin', ok); client.publish({ destination: '/topic/js.binary', binaryBody: body, headers: { receipt: 'r-bin' } }); });
    await until(() => got.length === 1, 5000, 'binary delivery');
    assert.deepEqual(Array.from(got[0].binaryBody), Array.from(body));
  } finally { await client.deactivate(); }
});

test('receipts: a SEND with receipt is answered with RECEIPT', async () => {
  const client = await connect('rcpt', 'client');
  try {
    const receipt = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('no RECEIPT')), 5000);
      client.watchForReceipt('r-42', (frame) => { clearTimeout(timer); ok(frame); });
      client.publish({ destination: '/topic/js.receipts', body: 'x', headers: { receipt: 'r-42' } });
    });
    assert.equal(receipt.headers['receipt-id'], 'r-42');
  } finally { await client.deactivate(); }
});

test('client-individual acks: messages keep flowing after ACK and NACK', async () => {
  const client = await connect('acker', 'client');
  try {
    const got = [];
    client.subscribe('/topic/js.acks', (m) => { got.push(m); if (got.length % 2) m.ack(); else m.nack(); }, { ack: 'client-individual' });
    for (let i = 0; i < 6; i++) client.publish({ destination: '/topic/js.acks', body: `m${i}` });
    await until(() => got.length === 6, 5000, 'six deliveries');
    await new Promise((ok) => { client.watchForReceipt('r-acks', ok); client.publish({ destination: '/topic/js.acks.done', headers: { receipt: 'r-acks' } }); });
    assert.deepEqual(got.map((m) => m.body), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    assert.ok(client.connected, 'still connected after ACK/NACK');
  } finally { await client.deactivate(); }
});

test('transactions: SENDs inside a transaction are delivered only at commit, never after abort', async () => {
  const client = await connect('tx', 'client');
  try {
    const got = [];
    client.subscribe('/topic/js.tx', (m) => got.push(m.body));
    const aborted = client.begin();
    client.publish({ destination: '/topic/js.tx', body: 'aborted', headers: { transaction: aborted.id } });
    aborted.abort();
    const committed = client.begin();
    client.publish({ destination: '/topic/js.tx', body: 'one', headers: { transaction: committed.id } });
    client.publish({ destination: '/topic/js.tx', body: 'two', headers: { transaction: committed.id } });
    await new Promise((ok) => { client.watchForReceipt('r-before', ok); client.publish({ destination: '/topic/js.other', headers: { receipt: 'r-before' } }); });
    assert.deepEqual(got, [], 'nothing delivered before COMMIT');
    committed.commit();
    await until(() => got.length === 2, 5000, 'committed deliveries');
    await new Promise((ok) => { client.watchForReceipt('r-after', ok); client.publish({ destination: '/topic/js.other', headers: { receipt: 'r-after' } }); });
    assert.deepEqual(got, ['one', 'two']);
  } finally { await client.deactivate(); }
});

test('heart-beats: the broker sends beats at the negotiated rate and keeps a beating client connected', async () => {
  const client = await connect('beater', 'client', { heartbeatIncoming: 200, heartbeatOutgoing: 200 });
  try {
    assert.equal(client.connectedFrame.headers['heart-beat'].split(',').length, 2);
    const [serverSends] = client.connectedFrame.headers['heart-beat'].split(',').map(Number);
    assert.ok(serverSends > 0, 'server offers to send heart-beats');
    // Polled, not slept: a fixed wait failed when this process was slow to read on a busy machine.
    await until(() => client.debugLines.some((l) => l.includes('<<< PONG')), Math.max(5000, serverSends * 5), 'a server heart-beat');
    await new Promise((r) => setTimeout(r, Math.max(1500, serverSends * 3)));
    assert.ok(client.connected, 'still connected');
  } finally { await client.deactivate(); }
});

test('reconnect: after a broker restart stompjs reconnects and the subscription works again', async () => {
  const port = await freePort();
  let own = await startBroker({ port });
  try {
    let connects = 0;
    const got = [];
    const client = new Client({
      webSocketFactory: () => new WebSocket(own.wsUrl, ['v12.stomp']),
      connectHeaders: { Authorization: `Bearer ${token('reconnector', 'client')}` },
      reconnectDelay: 200, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
    });
    client.onConnect = () => { connects++; client.subscribe('/topic/js.again', (m) => got.push(m.body)); };
    client.activate();
    await until(() => connects === 1, 10_000, 'first connect');
    const dataDir = own.dataDir;
    await own.stop();
    own = await startBroker({ port, dataDir });
    await until(() => connects === 2, 15_000, 'reconnect');
    const publisher = await connect('pub2', 'client', {}, own.wsUrl);
    // The resubscription is processed before anything published after the client saw CONNECTED; wait for the ack of that.
    await new Promise((ok) => { client.watchForReceipt('r-sub', ok); client.publish({ destination: '/topic/js.sync', headers: { receipt: 'r-sub' } }); });
    publisher.publish({ destination: '/topic/js.again', body: 'after restart' });
    await until(() => got.length === 1, 5000, 'delivery after reconnect');
    assert.deepEqual(got, ['after restart']);
    await publisher.deactivate();
    await client.deactivate();
  } finally { await own.dispose(); }
});
