// The broker dies mid-conversation (kill -9, then separately SIGTERM) and comes back on the same data and port: the two
// @stomp/stompjs parties reconnect, resume with since: and resend with client-msg-id; at the end each holds exactly the
// database's sequence, and every message that got a RECEIPT is stored exactly once, under the id its RECEIPT named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from './broker.mjs';
import { Party, Signal, talk, randomPoints, verify, chatArgs, userKnown } from './chat-harness.mjs';

const ADMIN = 'admin1', CLIENT = 'client1';
const CONVERSATION = `/topic/private-chat/${ADMIN}/${CLIENT}`;

for (const signalName of ['SIGKILL', 'SIGTERM']) {
  test(`${signalName} of the broker mid-conversation: after a restart on the same data, each side equals the database and every receipted message is stored once`,
    { timeout: 110_000 }, async (t) => {
      const started = Date.now();
      const dataDir = mkdtempSync(join(tmpdir(), 'wsbroker-js-restart-'));
      let broker = await startBroker({ dataDir, args: chatArgs });
      const port = broker.port;
      const signal = new Signal();
      const customer = new Party({ userId: CLIENT, role: 'client', wsUrl: broker.wsUrl, destination: CONVERSATION, signal });
      const admin = new Party({ userId: ADMIN, role: 'admin', wsUrl: broker.wsUrl, destination: CONVERSATION, subscribeTo: `/topic/private-chat/${ADMIN}/*`, signal });
      const total = 600, killAt = 200 + Math.floor(Math.random() * 200);
      let exit, receiptedBefore = 0, inFlightAtKill = 0, downMs = 0;
      try {
        await userKnown(broker.url, ADMIN, 'admin');
        await userKnown(broker.url, CLIENT, 'client');
        await Promise.all([customer.start(), admin.start()]);
        // The admin's loop kills the broker before its message killAt, while the customer keeps sending (its SENDs
        // in flight at that moment are the ones at stake), then brings it back on the same port and data.
        const onProgress = async (i) => {
          if (i !== killAt) return;
          receiptedBefore = customer.confirmed.size + admin.confirmed.size;
          inFlightAtKill = customer.pending.size + admin.pending.size;
          const down = Date.now();
          exit = await broker.kill(signalName);
          broker = await startBroker({ dataDir, port, args: chatArgs });
          downMs = Date.now() - down;
        };
        await Promise.all([
          talk(customer, { total, dropAt: randomPoints(5, 5, total - 5), timeoutMs: 80_000 }),
          talk(admin, { total, dropAt: randomPoints(5, 5, total - 5), timeoutMs: 80_000, onProgress }),
        ]);
        const { stored, problems } = await verify({ baseUrl: broker.url, adminId: ADMIN, clientId: CLIENT, parties: [customer, admin], signal });
        t.diagnostic(`${signalName} before admin message ${killAt} (${receiptedBefore} receipted, ${inFlightAtKill} sent and unconfirmed), broker exit ${JSON.stringify(exit)}, ` +
          `down ${downMs} ms; ${stored.length} stored in ${Date.now() - started} ms; ${customer.summary()}; ${admin.summary()}`);
        for (const p of [customer, admin]) {
          const unexpected = p.stompErrors.filter((m) => !(signalName === 'SIGTERM' && m === 'server shutting down'));
          if (unexpected.length) problems.push(`${p.userId} got ERROR frames: ${unexpected.join(' | ')}`);
        }
        assert.deepEqual(problems, [], problems.join('\n'));
        assert.equal(stored.length, 2 * total);
        assert.ok(inFlightAtKill > 0, 'the broker died with no SEND in flight: nothing was at stake');
        assert.ok(customer.connections >= 2 && admin.connections >= 2, 'both parties reconnected after the restart');
      } finally {
        await Promise.allSettled([customer.stop(), admin.stop()]);
        await broker.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
}
