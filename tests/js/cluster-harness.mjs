// Starts WsBroker nodes as separate processes on 127.0.0.1 in cluster mode (issue 15): one MariaDB database, RabbitMQ
// as the backplane, an exchange and user-event queues of their own per cluster so that clusters never hear each other.
import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, token } from './broker.mjs';
import { mariaDatabase } from './chat-harness.mjs';

/** Arguments that make a node of cluster `name` with node id `nodeId` on `database`. */
export function clusterArgs(name, nodeId, database) {
  return ['--Storage:Provider=MySql', `--ConnectionStrings:MySql=${database.connection}`,
    '--Bus:Transport=RabbitMq', `--Bus:Host=${process.env.WSBROKER_TEST_RABBITMQ_HOST ?? '127.0.0.1'}`,
    `--Bus:QueueName=${name}-users`, '--Bus:QueueExpiresMs=60000',
    '--Cluster:Enabled=true', `--Cluster:Exchange=${name}`, `--Broker:NodeId=${nodeId}`];
}

/** Starts `count` nodes (ids 1..count) of a fresh cluster on a fresh database. `extra` is passed to every node.
 * `extraFor(n)` adds arguments for node n (1-based). One after the other, each ready before the next: node 1 is then the
 * first consumer of every conversation shard, so it owns them all (RabbitMQ's single active consumer). */
export async function startCluster(count, extra = [], extraFor = () => []) {
  const name = `wsbroker-js-${randomBytes(4).toString('hex')}`;
  const database = mariaDatabase();
  const nodes = [];
  try {
    for (let n = 1; n <= count; n++) {
      const node = await startBroker({ single: true, args: [...clusterArgs(name, n, database), ...extra, ...extraFor(n)] });
      nodes.push(node);
      await ready(node.url);
    }
  } catch (error) {
    await Promise.allSettled(nodes.map((node) => node.dispose()));
    database.drop();
    throw error;
  }
  return {
    name, database, nodes,
    async dispose() {
      await Promise.allSettled(nodes.map((node) => node.dispose()));
      database.drop();
    },
  };
}

/** Resolves when GET /readyz answers 200 (the backplane is connected). */
export async function ready(baseUrl, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
      last = await response.text();
      if (response.status === 200) return;
    } catch (error) { last = error.message; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${baseUrl} not ready within ${ms} ms: ${last}`);
}

/** A connected stompjs client on `wsUrl`. */
export function connectTo(wsUrl, user, role = 'client') {
  const client = new Client({
    webSocketFactory: () => new WebSocket(wsUrl, ['v12.stomp']),
    connectHeaders: { Authorization: `Bearer ${token(user, role)}` },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`connect to ${wsUrl} timed out`)), 5000);
    client.onConnect = () => { clearTimeout(timer); ok(client); };
    client.onStompError = (frame) => { clearTimeout(timer); fail(new Error(`STOMP ERROR: ${frame.headers.message}`)); };
    client.activate();
  });
}

/** Subscribes and resolves once the broker's RECEIPT for the SUBSCRIBE arrived (the subscription is in place). */
export function subscribed(client, destination, onMessage, headers = {}) {
  return new Promise((ok) => {
    const receipt = `sub-${randomBytes(4).toString('hex')}`;
    client.watchForReceipt(receipt, () => ok());
    client.subscribe(destination, onMessage, { ...headers, receipt });
  });
}
