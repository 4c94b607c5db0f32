// The live inbox (/user/queue/inbox, issue 16) through @stomp/stompjs: a snapshot, then one delta per change in order
// (conversation, unread, presence, user), since: after a reconnect, bad input. The users are created, renamed and deleted
// through the user events on RabbitMQ (the UserSync publisher CLI), as the user service does. Against a cluster
// (cluster.test.mjs reruns this file with WSBROKER_JS_CLUSTER=3) the administrator stays on one node and the customers
// land on the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, token, repoRoot } from './broker.mjs';
import { Signal, waitFor } from './chat-harness.mjs';

const userSyncDll = join(repoRoot, 'src/UserSync/bin/Release/net10.0/WsBroker.UserSync.dll');
const rabbit = process.env.WSBROKER_TEST_RABBITMQ_HOST ?? '127.0.0.1';
const run = randomBytes(3).toString('hex');
const id = (name) => `ib-${run}-${name}`;
let broker, nodes;
const signal = new Signal();

/** Publishes user events with the UserSync CLI (what the user service does). */
function userEvents(...args) {
  const result = spawnSync('dotnet', [userSyncDll, ...args, '--host', rabbit], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
}

/** Resolves when every node's users table has `user` as wanted (GET /api/me answers from the table). */
async function known(user, role, predicate = (me) => me.known) {
  for (const url of nodes.map((n) => n.url)) {
    const deadline = Date.now() + 15_000;
    for (let me; !(me && predicate(me)); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > deadline) throw new Error(`${user} not as wanted on ${url}: ${JSON.stringify(me)}`);
      const response = await fetch(`${url}/api/me`, { headers: { authorization: `Bearer ${token(user, role)}` } });
      me = response.status === 200 ? await response.json() : null;
    }
  }
}

before(async () => {
  broker = await startBroker({ args: ['--Chat:MessagesPerSecond=100000', '--Chat:MessageBurst=100000', '--Bus:Transport=RabbitMq',
    `--Bus:Host=${rabbit}`, `--Bus:QueueName=wsbroker-js-inbox-${run}`, '--Bus:QueueExpiresMs=60000'] });
  nodes = broker.nodes ?? [broker];
  const dir = mkdtempSync(join(tmpdir(), 'wsbroker-inbox-'));
  try {
    const rows = ['id,name,role', ...['a1', 'a2', 'a3', 'a4'].map((a) => `${id(a)},Admin ${a},admin`),
      ...['c1', 'c2', 'c3', 'c4', 'c5'].map((c) => `${id(c)},Customer ${c},client`)];
    writeFileSync(join(dir, 'users.csv'), rows.join('\n') + '\n');
    userEvents('import', join(dir, 'users.csv'), '--event', 'created');
  } finally { rmSync(dir, { recursive: true, force: true }); }
  for (const u of ['a1', 'a2', 'a3', 'a4']) await known(id(u), 'admin');
  for (const u of ['c1', 'c2', 'c3', 'c4', 'c5']) await known(id(u), 'client');
});

after(async () => { await broker?.dispose(); });

/** A connected stompjs client of `user` on `wsUrl` (a fixed node, or the next one at each read of broker.wsUrl). */
async function connect(user, role, wsUrl = broker.wsUrl) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${token(user, role)}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  client.errors = [];
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${user}: connect timed out`)), 10_000);
    client.onConnect = () => { clearTimeout(timer); ok(); };
    client.onStompError = (f) => { clearTimeout(timer); client.errors.push(f.headers.message); signal.fire(); fail(new Error(f.headers.message)); };
    client.activate();
  });
  client.onStompError = (f) => { client.errors.push(f.headers.message); signal.fire(); };
  client.onWebSocketClose = () => { client.closed = true; signal.fire(); };
  return client;
}

/** Sends and resolves with the RECEIPT. */
function receipted(client, frame) {
  return new Promise((ok, fail) => {
    const receipt = `r-${randomBytes(4).toString('hex')}`;
    const timer = setTimeout(() => fail(new Error(`no receipt for ${frame.destination}`)), 10_000);
    client.watchForReceipt(receipt, (f) => { clearTimeout(timer); ok(f); });
    client.publish({ ...frame, headers: { ...frame.headers, receipt } });
  });
}

const say = (client, admin, customer, body) => receipted(client, { destination: `/topic/private-chat/${admin}/${customer}`, body });

/** Subscribes `client` to its inbox and resolves once the SUBSCRIBE's RECEIPT came (what it was owed first is then in). */
async function inbox(client, headers = {}) {
  const got = [];
  const receipt = `inbox-${randomBytes(4).toString('hex')}`;
  const subscribed = new Promise((ok) => client.watchForReceipt(receipt, ok));
  client.subscribe('/user/queue/inbox', (m) => {
    const body = JSON.parse(m.body);
    assert.equal(body.kind, m.headers.inbox);
    assert.equal(body.id, m.headers['message-id']);
    got.push({ kind: body.kind, id: BigInt(body.id), peer: m.headers.peer, lastMessageId: m.headers['last-message-id'], ...body });
    signal.fire();
  }, { ...headers, receipt });
  await subscribed;
  return got;
}

/** Waits for the `n`th frame of an inbox (1-based) and returns it. */
async function nth(got, n, what) {
  await waitFor(signal, () => got.length >= n, 10_000, () => `${what} (have ${got.map((g) => `${g.kind}:${g.peer ?? ''}`).join(', ')})`);
  return got[n - 1];
}

/** Resolves once the node at `url` sees `user` online (`admin`'s contacts): a presence change crosses the cluster on its
 * own time, so a snapshot taken at once could miss it. */
async function onlineOn(url, admin, user) {
  for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 100))) {
    const response = await fetch(`${url}/api/contacts`, { headers: { authorization: `Bearer ${token(admin, 'admin')}` } });
    const contacts = response.status === 200 ? (await response.json()).contacts : [];
    if (contacts.some((c) => c.userId === user && c.online)) return;
    assert.ok(Date.now() < deadline, `${user} not online on ${url}: ${response.status} ${JSON.stringify(contacts)}`);
  }
}

const summary = (d) => [d.kind, d.peer, d.conversation?.unread, d.conversation?.online, d.conversation?.deleted];

test('snapshot, then each kind of change in order: new conversation, new last message, unread after seen, presence off and on, renamed, deleted', { timeout: 120_000 }, async () => {
  const [admin, c1, c2] = [id('a1'), id('c1'), id('c2')];
  const adminUrl = broker.wsUrl;                               // the administrator stays on one node
  const carla = await connect(c1, 'client');
  const clients = [carla];
  try {
    await say(carla, admin, c1, 'My meter shows zero');
    await onlineOn(adminUrl.replace('ws://', 'http://').replace(/\/ws$/, ''), admin, c1);   // carla may be on another node
    const desk = await connect(admin, 'admin', adminUrl);
    clients.push(desk);
    const got = await inbox(desk);
    assert.equal(got.length, 1);
    const snapshot = got[0];
    assert.equal(snapshot.kind, 'snapshot');
    assert.deepEqual(snapshot.conversations.map((c) => [c.peerId, c.peerName, c.unread, c.online, c.preview, c.lastSender]),
      [[c1, 'Customer c1', 1, true, 'My meter shows zero', c1]]);

    let chris = await connect(c2, 'client');                   // not a peer yet: its presence is nobody's business
    clients.push(chris);
    await say(chris, admin, c2, 'Hi, I moved house');
    assert.deepEqual(summary(await nth(got, 2, 'new conversation')), ['conversation', c2, 1, true, false]);
    assert.equal(got[1].conversation.preview, 'Hi, I moved house');
    assert.equal(got[1].lastMessageId, got[1].conversation.lastMessageId);
    await say(carla, admin, c1, 'Still zero today');
    assert.deepEqual(summary(await nth(got, 3, 'new last message')), ['conversation', c1, 2, true, false]);
    await receipted(desk, { destination: `/topic/seen/${c1}`, headers: { 'up-to': got[2].lastMessageId } });
    assert.deepEqual(summary(await nth(got, 4, 'unread after seen')), ['unread', c1, 0, true, false]);
    await chris.deactivate();
    assert.deepEqual(summary(await nth(got, 5, 'presence off')), ['presence', c2, 1, false, false]);
    chris = await connect(c2, 'client');
    clients.push(chris);
    assert.deepEqual(summary(await nth(got, 6, 'presence on')), ['presence', c2, 1, true, false]);
    await chris.deactivate();
    assert.deepEqual(summary(await nth(got, 7, 'presence off again')), ['presence', c2, 1, false, false]);
    userEvents('publish', 'updated', '--id', c1, '--name', 'Carla Renamed', '--role', 'client');
    assert.deepEqual(summary(await nth(got, 8, 'renamed')), ['user', c1, 0, true, false]);
    assert.equal(got[7].conversation.peerName, 'Carla Renamed');
    userEvents('publish', 'deleted', '--id', c2);
    assert.deepEqual(summary(await nth(got, 9, 'deleted')), ['user', c2, 1, false, true]);
    await new Promise((r) => setTimeout(r, 300));              // anything extra (a duplicate) would arrive meanwhile
    assert.equal(got.length, 9, got.map((g) => `${g.kind}:${g.peer}`).join(', '));
    for (let i = 1; i < got.length; i++) assert.ok(got[i].id > got[i - 1].id, `ids grow: ${got[i - 1].id} then ${got[i].id}`);
    assert.deepEqual(desk.errors, []);
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
  }
});

test('since: after a reconnect gets exactly the changes missed meanwhile, then live ones', { timeout: 120_000 }, async () => {
  const [admin, c3, c4] = [id('a2'), id('c3'), id('c4')];
  const adminUrl = broker.wsUrl;
  const cleo = await connect(c3, 'client');
  const dan = await connect(c4, 'client');
  const clients = [cleo, dan];
  try {
    await say(cleo, admin, c3, 'first');
    await say(dan, admin, c4, 'hello');
    // The administrator's page, and its phone on the same node (it sees every change, with the same ids).
    const page = await connect(admin, 'admin', adminUrl);
    const phone = await connect(admin, 'admin', adminUrl);
    clients.push(page, phone);
    const before = await inbox(page);
    const watched = await inbox(phone);
    const since = before.at(-1).id;
    await page.deactivate();
    const mark = watched.length;
    await say(cleo, admin, c3, 'while you were away');
    await nth(watched, mark + 1, 'the missed message');
    await dan.deactivate();
    await nth(watched, mark + 2, 'the missed presence');
    await receipted(phone, { destination: `/topic/seen/${c3}`, headers: { 'up-to': watched[mark].lastMessageId } });
    await nth(watched, mark + 3, 'the missed read receipt');
    userEvents('publish', 'updated', '--id', c4, '--name', 'Dan Renamed', '--role', 'client');
    await nth(watched, mark + 4, 'the missed rename');
    const missed = watched.slice(mark);
    assert.deepEqual(missed.map((d) => [d.kind, d.peer]), [['conversation', c3], ['presence', c4], ['unread', c3], ['user', c4]]);

    const back = await connect(admin, 'admin', adminUrl);
    clients.push(back);
    const resumed = await inbox(back, { since: String(since) });
    // Exactly what was missed, with the same ids, each carrying the conversation as it is now.
    assert.deepEqual(resumed.map((d) => [d.kind, d.peer, d.id]), missed.map((d) => [d.kind, d.peer, d.id]));
    assert.deepEqual(resumed.map((d) => d.conversation.unread), [0, 1, 0, 1]);
    assert.equal(resumed[0].conversation.preview, 'while you were away');
    assert.equal(resumed[3].conversation.peerName, 'Dan Renamed');
    await say(cleo, admin, c3, 'and now live');
    const live = await nth(resumed, 5, 'the live message after the resume');
    assert.deepEqual(summary(live), ['conversation', c3, 1, true, false]);
    assert.ok(live.id > resumed[3].id);
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
  }
});

test('since: after the last subscription ended: the inbox is kept for the resume; an id it does not know gets a snapshot', { timeout: 60_000 }, async () => {
  const [admin, c5] = [id('a3'), id('c5')];
  const adminUrl = broker.wsUrl;
  // The customer is on the administrator's node, with her own inbox: that node applies each event to both inboxes at
  // once, so once hers shows a message the administrator's (kept with no subscriber) has it too.
  const eve = await connect(c5, 'client', adminUrl);
  const clients = [eve];
  try {
    const hers = await inbox(eve);
    await say(eve, admin, c5, 'one');
    await nth(hers, 2, 'her first message in her inbox');
    const first = await connect(admin, 'admin', adminUrl);
    const got = await inbox(first);
    await first.deactivate();
    await say(eve, admin, c5, 'two');
    await waitFor(signal, () => hers.some((d) => d.conversation?.preview === 'two'), 10_000, () => 'her second message in her inbox');
    const again = await connect(admin, 'admin', adminUrl);
    clients.push(again);
    const resumed = await inbox(again, { since: String(got[0].id) });
    assert.deepEqual(resumed.map((d) => [d.kind, d.peer, d.conversation.unread, d.conversation.preview]), [['conversation', c5, 2, 'two']]);
    // An id this node did not give this inbox (another node's, a restarted node's, or none at all): a fresh snapshot.
    const other = await connect(admin, 'admin', adminUrl);
    clients.push(other);
    const fresh = await inbox(other, { since: '12345' });
    assert.deepEqual(fresh.map((d) => d.kind), ['snapshot']);
    assert.deepEqual(fresh[0].conversations.map((c) => [c.peerId, c.unread]), [[c5, 2]]);
    if (nodes.length > 1) {
      // Another node of a cluster holds no inbox of this user: the resume there is a snapshot too.
      const elsewhere = nodes.find((n) => n.wsUrl !== adminUrl);
      const moved = await connect(admin, 'admin', elsewhere.wsUrl);
      clients.push(moved);
      const there = await inbox(moved, { since: String(resumed[0].id) });
      assert.deepEqual(there.map((d) => d.kind), ['snapshot']);
      assert.deepEqual(there[0].conversations.map((c) => [c.peerId, c.unread, c.preview]), [[c5, 2, 'two']]);
    }
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
  }
});

test('bad input: a bad since is an ERROR, SEND to /user/queue/inbox a rejection, an inbox with no conversation an empty snapshot', { timeout: 60_000 }, async () => {
  const admin = id('a4');
  for (const since of ['abc', '-1', '12x', '99999999999999999999']) {
    const client = await connect(admin, 'admin');
    client.subscribe('/user/queue/inbox', () => {}, { since, receipt: 'bad' });
    await waitFor(signal, () => client.errors.length > 0, 10_000, () => `an ERROR for since:${since}`);
    assert.deepEqual(client.errors, ['invalid since header: a message id (0 for everything)'], `since:${since}`);
    await waitFor(signal, () => client.closed, 10_000, () => `the connection closed after since:${since}`);
    await client.deactivate();
  }
  const client = await connect(admin, 'admin');
  try {
    const rejections = [];
    client.subscribe('/user/queue/errors', (m) => { rejections.push(m.headers.message); signal.fire(); });
    const empty = await inbox(client);
    assert.deepEqual(empty.map((d) => [d.kind, d.conversations]), [['snapshot', []]]);
    client.publish({ destination: '/user/queue/inbox', body: '{"kind":"snapshot"}', headers: { receipt: 'send-inbox' } });
    await waitFor(signal, () => rejections.length > 0, 10_000, () => 'the rejection of a SEND to /user/queue/inbox');
    assert.deepEqual(rejections, ['could-not-send-message: /user destinations are written by the broker only']);
    assert.deepEqual(client.errors, []);
  } finally {
    await client.deactivate();
  }
});
