// Cluster mode (issue 15): nodes as separate processes on 127.0.0.1, RabbitMQ as the backplane, one MariaDB database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from './broker.mjs';
import { startCluster, clusterArgs, connectTo, subscribed } from './cluster-harness.mjs';

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
    const twin = await startBroker({ args: clusterArgs(cluster.name, 1, cluster.database) }).then(
      async (node) => { await node.dispose(); return null; },
      (error) => error);
    assert.ok(twin, 'a node with the same Broker:NodeId started');
    assert.match(twin.message, /exited with 2/);
    assert.match(twin.message, /Broker:NodeId 1 is already in use by another node/);
  } finally { await cluster.dispose(); }
});

test('cluster mode without RabbitMQ as the bus or without MariaDB is refused naming the settings', { timeout: 60_000 }, async () => {
  const error = await startBroker({ args: ['--Cluster:Enabled=true', '--Broker:NodeId=1'] }).then(
    async (node) => { await node.dispose(); return null; }, (e) => e);
  assert.ok(error, 'a cluster node started on the embedded defaults');
  assert.match(error.message, /exited with 2/);
  assert.match(error.message, /Cluster:Enabled needs Bus:Transport=RabbitMq/);
  assert.match(error.message, /Cluster:Enabled needs Storage:Provider=MySql/);
});
