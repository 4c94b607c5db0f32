// Nothing lost, nothing twice (issue 14), through @stomp/stompjs: a customer and an administrator chat while their sockets
// are cut at random points; each resumes with `since:` and resends with `client-msg-id`, and ends holding exactly the
// database's sequence. Also the since: hand-off race with a third session. SQLite and MariaDB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, token } from './broker.mjs';
import { Party, Signal, talk, randomPoints, verify, history, firstDivergence, waitFor, chatArgs, mariaDatabase, userKnown } from './chat-harness.mjs';

const ADMIN = 'admin1', CLIENT = 'client1';
const CONVERSATION = `/topic/private-chat/${ADMIN}/${CLIENT}`;

async function chatWithDrops(t, extraArgs) {
  const started = Date.now();
  const broker = await startBroker({ args: [...chatArgs, ...extraArgs] });
  const signal = new Signal();
  const customer = new Party({ userId: CLIENT, role: 'client', wsUrl: broker.wsUrl, destination: CONVERSATION, signal });
  const admin = new Party({ userId: ADMIN, role: 'admin', wsUrl: broker.wsUrl, destination: CONVERSATION, subscribeTo: `/topic/private-chat/${ADMIN}/*`, signal });
  try {
    await userKnown(broker.url, ADMIN, 'admin');
    await userKnown(broker.url, CLIENT, 'client');
    await Promise.all([customer.start(), admin.start()]);
    const total = 1000;
    // 25 drops before chosen messages, and more from the receiving side (mid-batch, possibly mid-replay).
    const receiveDrops = new Map([[customer, randomPoints(8, 50, 2 * total - 50)], [admin, randomPoints(8, 50, 2 * total - 50)]]);
    const onFrame = () => {
      for (const [p, points] of receiveDrops) if (points.delete(p.held.length)) p.drop();
    };
    signal.on(onFrame);
    await Promise.all([
      talk(customer, { total, dropAt: randomPoints(25, 5, total - 5), timeoutMs: 80_000 }),
      talk(admin, { total, dropAt: randomPoints(25, 5, total - 5), timeoutMs: 80_000 }),
    ]);
    signal.off(onFrame);
    const { stored, problems } = await verify({ baseUrl: broker.url, adminId: ADMIN, clientId: CLIENT, parties: [customer, admin], signal });
    t.diagnostic(`${stored.length} stored in ${Date.now() - started} ms; ${customer.summary()}; ${admin.summary()}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    assert.equal(stored.length, 2 * total);
    for (const p of [customer, admin]) assert.ok(p.drops >= 20, `${p.userId} dropped only ${p.drops} times`);
    assert.ok(customer.resends + admin.resends > 0, 'no resend happened: the drops never caught a SEND in flight');
  } finally {
    await Promise.allSettled([customer.stop(), admin.stop()]);
    await broker.dispose();
  }
}

// Against a cluster (WSBROKER_JS_CLUSTER, cluster.test.mjs) every node is on MariaDB: the run below would repeat the next.
test('chat with dropped sockets, resumed with since: and client-msg-id, equals the database (SQLite)',
  { timeout: 120_000, skip: process.env.WSBROKER_JS_CLUSTER ? 'in cluster mode every node is on MariaDB (the next test)' : false }, async (t) => {
  await chatWithDrops(t, []);
});

test('chat with dropped sockets, resumed with since: and client-msg-id, equals the database (MariaDB)', { timeout: 120_000 }, async (t) => {
  const db = mariaDatabase();
  try {
    await chatWithDrops(t, ['--Storage:Provider=MySql', `--ConnectionStrings:MySql=${db.connection}`]);
  } finally { db.drop(); }
});

test('since:0 subscriptions made while messages commit each see every message once, in order', { timeout: 90_000 }, async (t) => {
  const broker = await startBroker({ args: [...chatArgs, '--Chat:MaxReplay=5000'] });
  const signal = new Signal();
  const customer = new Party({ userId: CLIENT, role: 'client', wsUrl: broker.wsUrl, destination: CONVERSATION, signal });
  const admin = new Party({ userId: ADMIN, role: 'admin', wsUrl: broker.wsUrl, destination: CONVERSATION, signal });
  // One session per subscription (more sessions of admin1, and of client1), connected up front: each one's outbound
  // queue then holds one replay (at most 800 messages, under Broker:OutboundQueueFrames) plus its live tail.
  const count = 24, total = 400;
  const watchers = Array.from({ length: count }, (_, n) => new Client({
    webSocketFactory: () => new WebSocket(broker.wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${n % 2 ? token(ADMIN, 'admin') : token(CLIENT, 'client')}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  }));
  const watcherErrors = [], watcherCloses = [];
  try {
    await userKnown(broker.url, ADMIN, 'admin');
    await userKnown(broker.url, CLIENT, 'client');
    await Promise.all([customer.start(), admin.start()]);
    for (const [n, w] of watchers.entries()) {
      w.onStompError = (f) => { watcherErrors.push(`watcher ${n + 1}: ERROR ${f.headers.message}`); signal.fire(); };
      w.onWebSocketClose = () => { watcherCloses.push(n + 1); signal.fire(); };
      w.onConnect = () => signal.fire();
      w.activate();
    }
    await waitFor(signal, () => watchers.every((w) => w.connected), 15_000, () => 'watchers to connect');
    watcherCloses.length = 0;

    // A new since:0 subscription each time the writers have committed another 1/count of the conversation.
    const subscriptions = [];
    const subscribe = () => {
      const sub = { n: subscriptions.length + 1, atStored: admin.held.length, got: [], lastId: 0n, violations: [] };
      subscriptions.push(sub);
      const conversation = sub.n % 4 === 0 ? `/topic/private-chat/${ADMIN}/*` : CONVERSATION;
      watchers[sub.n - 1].subscribe(conversation, (m) => {
        const id = BigInt(m.headers['message-id']);
        const replay = m.headers.replay === 'true';
        if (m.headers.replay === 'truncated') sub.violations.push(`subscription ${sub.n}: replay truncated`);
        else if (id <= sub.lastId) sub.violations.push(`subscription ${sub.n} (made at ${sub.atStored} delivered): ${id} (${replay ? 'replay' : 'live'}) after ${sub.lastId}`);
        else sub.lastId = id;
        sub.got.push({ id, cmid: m.headers['client-msg-id'], replay });
        signal.fire();
      }, { id: `since0-${sub.n}`, since: '0' });
    };
    // The last one is made when admin holds all but 1/(count + 1) of the conversation, before the last messages arrive.
    const step = Math.floor((2 * total) / (count + 1));
    let next = 0;
    const onFrame = () => {
      if (admin.held.length >= next && subscriptions.length < count) { subscribe(); next += step; }
    };
    signal.on(onFrame);
    await Promise.all([talk(customer, { total, window: 50 }), talk(admin, { total, window: 50 })]);
    // talk() ends on the senders' receipts: admin may still be taking in the other side's last messages, and the last
    // subscriptions wait for those frames.
    const timedOut = [];                                          // what a wait gave up on, reported with the rest
    await waitFor(signal, () => subscriptions.length === count, 15_000,
      () => `${count} subscriptions: ${subscriptions.length} made with admin holding ${admin.held.length}`).catch((e) => timedOut.push(e.message));
    signal.off(onFrame);

    const stored = await history(broker.url, ADMIN, CLIENT, CLIENT, 'client');
    const lastId = stored.at(-1).id;
    await waitFor(signal, () => subscriptions.every((s) => s.lastId >= lastId), 15_000,
      () => `every subscription to reach ${lastId}: ${subscriptions.map((s) => `${s.n}:${s.got.length}`).join(' ')}`).catch((e) => timedOut.push(e.message));
    const problems = [...timedOut, ...watcherErrors, ...(watcherCloses.length ? [`watcher sessions closed: ${watcherCloses.join(',')}`] : [])];
    for (const s of subscriptions) {
      problems.push(...s.violations.slice(0, 3));
      const divergence = firstDivergence(s.got, stored, `subscription ${s.n} (made with ${s.atStored} of ${stored.length} delivered)`);
      if (divergence) problems.push(divergence);
    }
    const mixed = subscriptions.filter((s) => s.got.some((m) => m.replay) && s.got.some((m) => !m.replay));
    t.diagnostic(`${subscriptions.length} since:0 subscriptions over ${stored.length} messages; ${mixed.length} switched from replay to live mid-stream; ` +
      `replayed per subscription: ${subscriptions.map((s) => s.got.filter((m) => m.replay).length).join(',')}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    assert.equal(stored.length, 2 * total);
    assert.equal(subscriptions.length, count);
    assert.ok(mixed.length >= count / 2, `only ${mixed.length} subscriptions had both a replay and a live part: the race was not exercised`);
  } finally {
    await Promise.allSettled([customer.stop(), admin.stop(), ...watchers.map((w) => w.deactivate())]);
    await broker.dispose();
  }
});

// Chat:MaxReplay used to accept 1..10000, but at 10000 ChatReplaySource asked the store for MaxReplay + 1 rows and the
// store refuses more than 10000: every SUBSCRIBE with since: then ended the connection with no ERROR frame. The range is
// now 1..5000 (a replay is queued to the session at once), and a source that fails gives an ERROR; the top of the range
// must still serve a since:0 SUBSCRIBE.
test('Chat:MaxReplay=5000 (the top of its allowed range) still serves a since:0 SUBSCRIBE', { timeout: 60_000 }, async () => {
  const broker = await startBroker({ args: [...chatArgs, '--Chat:MaxReplay=5000'] });
  const signal = new Signal();
  const client = new Client({
    webSocketFactory: () => new WebSocket(broker.wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${token(ADMIN, 'admin')}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  const seen = [];
  client.onConnect = () => seen.push('CONNECTED');
  client.onStompError = (f) => seen.push(`ERROR ${f.headers.message}`);
  client.onWebSocketClose = (e) => seen.push(`socket closed ${e.code}`);
  for (const k of ['onConnect', 'onStompError', 'onWebSocketClose']) { const f = client[k]; client[k] = (x) => { f(x); signal.fire(); }; }
  try {
    await userKnown(broker.url, ADMIN, 'admin');
    client.activate();
    await waitFor(signal, () => seen.length > 0, 10_000, () => 'CONNECTED');
    assert.deepEqual(seen, ['CONNECTED']);
    client.watchForReceipt('since-0', () => { seen.push('RECEIPT'); signal.fire(); });
    client.subscribe(CONVERSATION, () => {}, { id: 'resume', since: '0', receipt: 'since-0' });
    await waitFor(signal, () => seen.length > 1, 10_000, () => `an answer to the SUBSCRIBE: ${seen.join(', ')}`);
    assert.deepEqual(seen, ['CONNECTED', 'RECEIPT'], `SUBSCRIBE since:0 with Chat:MaxReplay=5000 was answered by: ${seen.slice(1).join(', ')}`);
  } finally {
    await client.deactivate();
    await broker.dispose();
  }
});
