// Cluster mode (issue 15): nodes as separate processes on 127.0.0.1, RabbitMQ as the backplane, one MariaDB database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, token, until, repoRoot, freePort } from './broker.mjs';
import { startCluster, clusterArgs, connectTo, subscribed, ready } from './cluster-harness.mjs';
import { chatArgs, userKnown, Party, Signal, talk, verify, waitFor } from './chat-harness.mjs';

const userSyncDll = join(repoRoot, 'src/UserSync/bin/Release/net10.0/WsBroker.UserSync.dll');
const here = dirname(fileURLToPath(import.meta.url));

test('three nodes: topics and wildcards published on any node reach the subscribers on every node, once, in order', { timeout: 90_000 }, async () => {
  const cluster = await startCluster(3);
  const clients = [];
  try {
    const [n1, n2, n3] = cluster.nodes;
    const subscribers = [
      { node: n1, destination: '/topic/prices/*' },
      { node: n2, destination: '/topic/prices/#' },
      { node: n3, destination: '/topic/prices/gas' },
      { node: n1, destination: '/topic/other' },
    ];
    for (const s of subscribers) {
      s.client = await connectTo(s.node.wsUrl, `watcher-${clients.length}`);
      clients.push(s.client);
      s.got = [];
      await subscribed(s.client, s.destination, (m) => s.got.push(`${m.headers.destination} ${m.body}`));
    }
    const publishers = [];
    for (const node of cluster.nodes) {
      const client = await connectTo(node.wsUrl, `publisher-${publishers.length}`);
      clients.push(client);
      publishers.push(client);
    }
    const perPublisher = 200;
    const sent = [];
    for (let i = 0; i < perPublisher; i++) {
      for (const [p, client] of publishers.entries()) {
        const destination = i % 2 ? '/topic/prices/gas' : '/topic/prices/power/peak';
        client.publish({ destination, body: `p${p}-${i}` });
        sent.push(`${destination} p${p}-${i}`);
      }
    }
    const expect = (pattern) => sent.filter((line) => pattern.test(line.split(' ')[0]));
    const wanted = [expect(/^\/topic\/prices\/[^/]+$/), expect(/^\/topic\/prices\//), expect(/^\/topic\/prices\/gas$/), []];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && subscribers.some((s, i) => s.got.length < wanted[i].length)) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));                 // anything extra (a duplicate, a stray) arrives meanwhile
    for (const [i, s] of subscribers.entries()) {
      assert.deepEqual([...s.got].sort(), [...wanted[i]].sort(), `${s.destination} on node ${cluster.nodes.indexOf(s.node) + 1}`);
      // Each publisher's messages arrive in the order it sent them.
      for (let p = 0; p < publishers.length; p++) {
        const mine = s.got.filter((line) => line.includes(` p${p}-`));
        assert.deepEqual(mine, wanted[i].filter((line) => line.includes(` p${p}-`)), `order of publisher ${p} at ${s.destination}`);
      }
    }
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
    await cluster.dispose();
  }
});

test('a second node with a node id already in use is refused at start with a clear message', { timeout: 60_000 }, async () => {
  const cluster = await startCluster(1);
  try {
    const twin = await startBroker({ single: true, args: clusterArgs(cluster.name, 1, cluster.database) }).then(
      async (node) => { await node.dispose(); return null; },
      (error) => error);
    assert.ok(twin, 'a node with the same Broker:NodeId started');
    assert.match(twin.message, /exited with 2/);
    assert.match(twin.message, /Broker:NodeId 1 is already in use by another node/);
  } finally { await cluster.dispose(); }
});

test('cluster mode without RabbitMQ as the bus or without MariaDB is refused naming the settings', { timeout: 60_000 }, async () => {
  const error = await startBroker({ single: true, args: ['--Cluster:Enabled=true', '--Broker:NodeId=1'] }).then(
    async (node) => { await node.dispose(); return null; }, (e) => e);
  assert.ok(error, 'a cluster node started on the embedded defaults');
  assert.match(error.message, /exited with 2/);
  assert.match(error.message, /Cluster:Enabled needs Bus:Transport=RabbitMq/);
  assert.match(error.message, /Cluster:Enabled needs Storage:Provider=MySql/);
});

const fastBeats = ['--Cluster:HeartbeatMs=200', '--Cluster:NodeTimeoutMs=1000'];

test('presence is cluster-wide: online while any node has the user, offline after the last, and when their node dies', { timeout: 90_000 }, async () => {
  const cluster = await startCluster(3, [...chatArgs, ...fastBeats]);
  const clients = [];
  try {
    const [n1, n2, n3] = cluster.nodes;
    await userKnown(n1.url, 'admin1', 'admin');
    const watcher = await connectTo(n1.wsUrl, 'admin1', 'admin');
    clients.push(watcher);
    const notices = [];
    await subscribed(watcher, '/topic/presence', (m) => { const { userId, online } = JSON.parse(m.body); if (userId === 'client2') notices.push(online); });
    const online = async () => (await contacts(n1.url)).find((c) => c.userId === 'client2').online;

    const on2 = await connectTo(n2.wsUrl, 'client2');
    await until(() => notices.length === 1, 5000, 'online notice from node 2');
    assert.deepEqual(notices, [true]);
    assert.equal(await online(), true, 'the admin on node 1 sees client2 (on node 2) online');
    const on3 = await connectTo(n3.wsUrl, 'client2');
    // Node 3's "online" and node 2's "offline" reach node 1 from two nodes, in no set order. Node 3's deltas travel in order
    // with its messages: once one of its messages is on node 1, so is its "online", and node 2's end is no flap.
    const probes = [];
    await subscribed(watcher, '/topic/presence-probe', (m) => probes.push(m.body));
    on3.publish({ destination: '/topic/presence-probe', body: 'after-online' });
    await until(() => probes.length === 1, 5000, 'a message from node 3 on node 1');
    await on2.deactivate();
    await new Promise((r) => setTimeout(r, 800));
    assert.deepEqual(notices, [true], 'still online on node 3: no offline notice');
    assert.equal(await online(), true);
    await on3.deactivate();
    await until(() => notices.length === 2, 5000, 'offline notice');
    assert.deepEqual(notices, [true, false]);
    assert.equal(await online(), false);

    // A node that dies takes its users offline everywhere within Cluster:NodeTimeoutMs (1 s here) and a heartbeat.
    clients.push(await connectTo(n3.wsUrl, 'client2'));
    await until(() => notices.length === 3, 5000, 'online again');
    const killedAt = Date.now();
    await n3.kill('SIGKILL');
    await until(() => notices.length === 4, 5000, 'offline after node 3 died');
    const after = Date.now() - killedAt;
    assert.deepEqual(notices, [true, false, true, false]);
    // NodeTimeoutMs (1 s) and a 200 ms tick, with room for three busy nodes' timers; still under the default 5 s.
    assert.ok(after < 4000, `offline ${after} ms after the node died`);
    assert.equal(await online(), false);
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
    await cluster.dispose();
  }
});

test('a user deleted through the bus is disconnected on every node within 1 s', { timeout: 90_000 }, async () => {
  const cluster = await startCluster(3, chatArgs);
  const clients = [];
  try {
    for (const node of cluster.nodes) await userKnown(node.url, 'client3', 'client');
    const closed = [];
    for (const [n, node] of cluster.nodes.entries()) {
      const client = await connectTo(node.wsUrl, 'client3');
      client.onStompError = (frame) => closed.push({ node: n + 1, message: frame.headers.message, at: Date.now() });
      clients.push(client);
    }
    const published = Date.now();
    const run = spawnSync('dotnet', [userSyncDll, 'publish', 'deleted', '--id', 'client3', '--version', String(Date.now()),
      '--host', process.env.WSBROKER_TEST_RABBITMQ_HOST ?? '127.0.0.1'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 0, run.stderr);
    const sent = Date.now();
    await until(() => closed.length === 3, 5000, `all three sessions closed (${JSON.stringify(closed)})`);
    for (const c of closed) {
      assert.equal(c.message, 'user deleted');
      assert.ok(c.at - sent < 1000, `node ${c.node} closed ${c.at - sent} ms after the event was published (the CLI took ${sent - published} ms)`);
    }
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
    await cluster.dispose();
  }
});

async function contacts(baseUrl) {
  const response = await fetch(`${baseUrl}/api/contacts`, { headers: { authorization: `Bearer ${token('admin1', 'admin')}` } });
  assert.equal(response.status, 200);
  return (await response.json()).contacts;
}

// Failover (issue 15): the parties of one conversation sit on different nodes; the administrator's node, which owns the
// conversation (node 1 started first: it owns every shard), is killed -9 mid-conversation. The administrator reconnects
// to node 3 with since: and resends with client-msg-id; the requests the dead owner had not answered are given to the next
// owner (node 2, the next consumer). Both parties end with exactly the database's sequence. `skewMs` shifts the clock of
// node 2's ids: the node that takes the conversation over then runs a second behind the one that gave it ids so far.
async function failover(t, { skewMs = 0 } = {}) {
  const cluster = await startCluster(3, chatArgs, (n) => (n === 2 && skewMs ? [`--Broker:ClockOffsetMs=${skewMs}`] : []));
  const [n1, n2, n3] = cluster.nodes;
  const signal = new Signal();
  let adminUrl = n1.wsUrl;
  const customer = new Party({ userId: 'client1', role: 'client', wsUrl: n2.wsUrl, destination: CHAT, signal });
  const admin = new Party({ userId: 'admin1', role: 'admin', wsUrl: () => adminUrl, destination: CHAT, subscribeTo: '/topic/private-chat/admin1/*', signal });
  const started = Date.now();
  try {
    await userKnown(n2.url, 'admin1', 'admin');
    await userKnown(n2.url, 'client1', 'client');
    await Promise.all([customer.start(), admin.start()]);
    const total = 1000;
    let killedAt = 0, reconnected = 0, ownerHandled = 0;
    const kill = async (i) => {
      if (i !== 300 || killedAt) return;
      ownerHandled = await handled(n1.url);
      adminUrl = n3.wsUrl;
      killedAt = Date.now();
      await n1.kill('SIGKILL');
      const before = admin.connections;
      waitFor(signal, () => admin.connections > before, 30_000, () => 'admin to reconnect').then(() => { reconnected = Date.now() - killedAt; }, () => {});
    };
    await Promise.all([
      talk(customer, { total, window: 30, timeoutMs: 60_000 }),
      talk(admin, { total, window: 30, timeoutMs: 60_000, onProgress: kill }),
    ]);
    const { stored, problems } = await verify({ baseUrl: n2.url, adminId: 'admin1', clientId: 'client1', parties: [customer, admin], signal });
    const after = [await handled(n2.url), await handled(n3.url)];
    t.diagnostic(`${stored.length} stored in ${Date.now() - started} ms; node 1 handled ${ownerHandled} requests before it died, nodes 2 and 3 ` +
      `${after.join(' and ')} after; admin back ${reconnected} ms after; ${customer.summary()}; ${admin.summary()}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    assert.equal(stored.length, 2 * total);
    assert.ok(killedAt > 0 && admin.connections >= 2, 'node 1 was killed and the administrator reconnected elsewhere');
    assert.ok(ownerHandled > 0, 'node 1 did not own the conversation: the owner\'s death was not exercised');
    assert.ok(after[0] + after[1] > 0, 'no other node took the conversation over');
  } finally {
    await Promise.allSettled([customer.stop(), admin.stop()]);
    await cluster.dispose();
  }
}

/** The stored SENDs node `baseUrl` handled as the owner of their shard (its /metrics). */
async function handled(baseUrl) {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return Number(/^wsbroker_cluster_requests_handled_total(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1] ?? 0);
}

const CHAT = '/topic/private-chat/admin1/client1';

test('failover: the administrator\'s node is killed -9 mid-conversation; both parties end with the database\'s sequence', { timeout: 120_000 }, async (t) => {
  await failover(t);
});

test('failover to an owner whose clock is a second behind: ids still increase, nothing is skipped', { timeout: 120_000 }, async (t) => {
  await failover(t, { skewMs: -1000 });
});

test('the shipped HAProxy config is valid, and HAProxy in front of two nodes serves clients and fails over on /readyz', { timeout: 120_000 }, async () => {
  const config = join(repoRoot, 'deploy/haproxy.cfg');
  const listen = await freePort();
  const check = spawnSync('haproxy', ['-c', '-f', config], {
    encoding: 'utf8', env: { ...process.env, WSBROKER_LISTEN: `127.0.0.1:${listen}`, WSBROKER_NODE1: 'broker1:8080', WSBROKER_NODE2: 'broker2:8080' },
  });
  assert.equal(check.status, 0, `haproxy -c: ${check.stdout}${check.stderr}`);
  const cluster = await startCluster(2);
  const [n1, n2] = cluster.nodes;
  const haproxy = spawn('haproxy', ['-db', '-f', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WSBROKER_LISTEN: `127.0.0.1:${listen}`, WSBROKER_NODE1: `127.0.0.1:${n1.port}`, WSBROKER_NODE2: `127.0.0.1:${n2.port}` },
  });
  let log = '';
  haproxy.stdout.on('data', (d) => { log += d; });
  haproxy.stderr.on('data', (d) => { log += d; });
  const front = `ws://127.0.0.1:${listen}/ws`;
  const clients = [];
  try {
    await until(() => log.length > 0 || haproxy.exitCode === null, 5000, 'haproxy to start');
    await ready(`http://127.0.0.1:${listen}`);
    // leastconn spreads the connections over both nodes; a message published by any reaches the subscribers on both.
    const got = [];
    for (let i = 0; i < 4; i++) {
      const c = await connectTo(front, `viewer-${i}`);
      clients.push(c);
      await subscribed(c, '/topic/through-haproxy', (m) => got.push(`${i}:${m.body}`));
    }
    const perNode = await Promise.all(cluster.nodes.map(async (n) => Number(/^wsbroker_connections(?:\{[^}]*\})? (\S+)/m.exec(await (await fetch(`${n.url}/metrics`)).text())?.[1] ?? 0)));
    assert.ok(perNode.every((n) => n >= 1), `connections per node: ${perNode.join(', ')}`);
    clients[0].publish({ destination: '/topic/through-haproxy', body: 'hello' });
    await until(() => got.length === 4, 5000, 'all four viewers got the message');
    // Node 1 dies: HAProxy's check marks it down; a new connection through the same address reaches node 2.
    await n1.kill('SIGKILL');
    await until(() => /node1 is DOWN/.test(log), 10_000, `haproxy to mark node1 down:\n${log}`);
    const after = await connectTo(front, 'late-viewer');
    clients.push(after);
    const late = [];
    await subscribed(after, '/topic/through-haproxy', (m) => late.push(m.body));
    const survivor = await connectTo(front, 'late-publisher');
    clients.push(survivor);
    survivor.publish({ destination: '/topic/through-haproxy', body: 'after' });
    await until(() => late.length === 1, 5000, 'the new viewer, on node 2, got the message');
  } finally {
    await Promise.allSettled(clients.map((c) => c.deactivate()));
    haproxy.kill('SIGTERM');
    await cluster.dispose();
  }
});

// The single-node suites again, against three nodes with their clients spread over them (broker.mjs: WSBROKER_JS_CLUSTER):
// topics and wildcards, receipts, acks, transactions, heart-beats, a whole support conversation with typing and seen, and
// the resume suite (parties on different nodes dropping their sockets, since:0 subscriptions during commits), the
// long-lived sessions (token expiry with the publisher on another node, refreshes) and the live inbox (the administrator
// on one node, the customers on the others). Its SQLite run skips itself: in cluster mode every node is on MariaDB, so it
// would repeat the MariaDB one.
test('the single-node suites pass against three nodes with their clients spread over them', { timeout: 600_000 }, async (t) => {
  const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=180000',
    'chat.test.mjs', 'stompjs.test.mjs', 'resume.test.mjs', 'token.test.mjs', 'inbox.test.mjs'], {
    cwd: here, encoding: 'utf8', timeout: 590_000,
    // NODE_TEST_CONTEXT is how the runner tells its own child processes apart: this run is a new, independent one.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), WSBROKER_JS_CLUSTER: '3' },
  });
  const summary = (run.stdout ?? '').split('\n').filter((l) => /^(not ok|ok|# (pass|fail|skipped|tests))/.test(l));
  t.diagnostic(summary.join('\n'));
  assert.equal(run.status, 0, `${summary.join('\n')}\n${(run.stdout ?? '').slice(-6000)}${run.stderr ?? ''}`);
  assert.ok(summary.some((l) => /^# pass (1[0-9]|[2-9][0-9])/.test(l)), 'fewer suites ran than expected');
});

// RabbitMQ stops and starts under chat traffic (its Erlang node keeps running: stop_app/start_app closes every
// connection and drops the transient queues). The nodes keep serving their own clients and report not ready, reconnect
// by themselves, and are ready again; the customer and the administrator (on different nodes) resend what was refused
// meanwhile. Each node then closes its chat sessions (ERROR "backplane gap": messages of the other node may have been
// missed), and the parties, back with since:, hold exactly the database's sequence. Every RECEIPT names a stored row.
test('RabbitMQ stopped and started under traffic: nodes recover, nothing receipted is lost', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster(2, [...chatArgs, '--Cluster:RequestTimeoutMs=2000']);
  const [n1, n2] = cluster.nodes;
  const signal = new Signal();
  const customer = new Party({ userId: 'client1', role: 'client', wsUrl: n1.wsUrl, destination: CHAT, signal, resendWhenUnavailable: true });
  const admin = new Party({ userId: 'admin1', role: 'admin', wsUrl: n2.wsUrl, destination: CHAT, subscribeTo: '/topic/private-chat/admin1/*', signal, resendWhenUnavailable: true });
  const rabbit = (command) => spawnSync('rabbitmqctl', [command], { encoding: 'utf8', timeout: 60_000 });
  let stopped = false;
  try {
    await userKnown(n1.url, 'admin1', 'admin');
    await userKnown(n1.url, 'client1', 'client');
    await Promise.all([customer.start(), admin.start()]);
    const total = 400;
    let outage = null;
    const cut = async (i) => {
      if (i !== 100 || outage) return;
      outage = (async () => {
        const result = rabbit('stop_app');
        assert.equal(result.status, 0, result.stderr);
        stopped = true;
        // The nodes notice the closed connections: each is asked until it says 503 (10 s at most, RabbitMQ staying away).
        const notReady = await Promise.all(cluster.nodes.map(async (n) => {
          let status = 0;
          for (const deadline = Date.now() + 10_000; status !== 503 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 100)))
            status = (await fetch(`${n.url}/readyz`)).status;
          return status;
        }));
        await new Promise((r) => setTimeout(r, 2000));            // traffic goes on meanwhile, refused and resent
        const started = rabbit('start_app');
        assert.equal(started.status, 0, started.stderr);
        stopped = false;
        return notReady;
      })();
    };
    await Promise.all([
      talk(customer, { total, window: 10, timeoutMs: 120_000, onProgress: cut }),
      talk(admin, { total, window: 10, timeoutMs: 120_000 }),
    ]);
    const notReady = await outage;
    assert.deepEqual(notReady, [503, 503], 'both nodes reported not ready while RabbitMQ was away');
    await Promise.all(cluster.nodes.map((n) => ready(n.url, 60_000)));
    // Live deliveries between the nodes stopped meanwhile: once reconnected, each node closed its chat sessions with
    // ERROR "backplane gap", and the parties (stompjs reconnects by itself) resubscribed with since: and caught up.
    for (const p of [customer, admin]) {
      await waitFor(signal, () => p.stompErrors.includes('backplane gap') && p.connected, 20_000,
        () => `${p.userId} closed for the gap and back: ${p.summary()}\n${nodesOutput(cluster)}`);
    }
    const { stored, problems } = await verify({ baseUrl: n1.url, adminId: 'admin1', clientId: 'client1', parties: [customer, admin], signal });
    t.diagnostic(`${stored.length} stored; ${customer.summary()}; ${admin.summary()}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    const unexpected = [customer, admin].flatMap((p) => p.stompErrors.filter((e) => e !== 'backplane gap'));
    assert.deepEqual(unexpected, [], 'no other ERROR than the gap');
    assert.equal(stored.length, 2 * total);
    assert.ok(customer.unavailable + admin.unavailable > 0, 'no SEND was refused while RabbitMQ was away: the outage was not under traffic');
  } finally {
    if (stopped) rabbit('start_app');
    await Promise.allSettled([customer.stop(), admin.stop()]);
    await cluster.dispose();
  }
});

// One node loses its RabbitMQ connection (closed by RabbitMQ) while the other keeps it and keeps storing: the
// administrator's messages published meanwhile never reach node 1. When node 1's connection recovers, the messages that
// follow flow again at once, so its customer's chat subscription must be fenced before the first of them: had the
// customer received one, its since would pass what it missed. It is closed with "backplane gap" and resumes; the other
// node saw no gap and closes nothing.
test("one node's RabbitMQ connection closed under traffic: its customer resumes from before the gap, nothing is lost", { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster(2, [...chatArgs, '--Cluster:RequestTimeoutMs=2000']);
  const [n1, n2] = cluster.nodes;
  const signal = new Signal();
  const customer = new Party({ userId: 'client1', role: 'client', wsUrl: n1.wsUrl, destination: CHAT, signal, resendWhenUnavailable: true });
  const admin = new Party({ userId: 'admin1', role: 'admin', wsUrl: n2.wsUrl, destination: CHAT, subscribeTo: '/topic/private-chat/admin1/*', signal, resendWhenUnavailable: true });
  try {
    await userKnown(n1.url, 'admin1', 'admin');
    await userKnown(n1.url, 'client1', 'client');
    await Promise.all([customer.start(), admin.start()]);
    const total = 400;
    let closed = null;
    const cut = (i) => {
      if (i !== 100 || closed) return;
      closed = closeConnection(`${cluster.name}.node.1`);
    };
    await Promise.all([
      talk(customer, { total, window: 10, timeoutMs: 120_000, onProgress: cut }),
      talk(admin, { total, window: 10, timeoutMs: 120_000 }),
    ]);
    assert.equal(closed, 'closed', `node 1's connection was closed: ${closed}`);
    await Promise.all(cluster.nodes.map((n) => ready(n.url, 60_000)));
    await waitFor(signal, () => customer.stompErrors.includes('backplane gap') && customer.connected, 20_000,
      () => `the customer closed for the gap and back: ${customer.summary()}\n${nodesOutput(cluster)}`);
    const { stored, problems } = await verify({ baseUrl: n1.url, adminId: 'admin1', clientId: 'client1', parties: [customer, admin], signal });
    t.diagnostic(`${stored.length} stored; ${customer.summary()}; ${admin.summary()}`);
    assert.deepEqual(problems, [], problems.join('\n'));
    assert.deepEqual(customer.stompErrors.filter((e) => e !== 'backplane gap'), [], 'no other ERROR than the gap');
    assert.deepEqual(admin.stompErrors, [], 'node 2 kept its connection: its administrator was not closed');
    assert.equal(stored.length, 2 * total);
  } finally {
    await Promise.allSettled([customer.stop(), admin.stop()]);
    await cluster.dispose();
  }
});

/** What the nodes logged (warnings and up), the last 3,000 characters of each: for a failure's message. */
function nodesOutput(cluster) {
  return cluster.nodes.map((n, i) => `--- node ${i + 1} logged:\n${n.output().slice(-3000)}`).join('\n');
}

/** Has RabbitMQ close the connection named `name` (a node's, named after its queue); "closed" or what went wrong. */
function closeConnection(name) {
  const list = spawnSync('rabbitmqctl', ['list_connections', '-q', 'pid', 'client_properties'], { encoding: 'utf8', timeout: 60_000 });
  if (list.status !== 0) return `list_connections failed: ${list.stderr}`;
  // One line per connection: its Erlang pid, a tab, its client properties (which hold the connection's name).
  const line = list.stdout.split('\n').find((l) => l.includes(`"${name}"`));
  if (!line) return `no connection named ${name}: ${list.stdout}`;
  const row = { pid: line.split('\t')[0] };
  const close = spawnSync('rabbitmqctl', ['close_connection', row.pid, 'test: this node loses its connection'], { encoding: 'utf8', timeout: 60_000 });
  return close.status === 0 ? 'closed' : `close_connection failed: ${close.stderr}`;
}
