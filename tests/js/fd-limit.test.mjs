// The broker at its open-file limit (issue 17): started under `ulimit -n 1000`, it takes 2,000 WebSocket connections and
// 2,000 raw TCP connections that never send a byte. It must refuse what it cannot hold (503 with a problem body for an
// upgrade, an immediate close for a plain connection), count the refusals in /metrics, log them a few times only, keep
// its RSS bounded, answer /healthz, keep serving the connections it took, and take a normal client once room is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';
import { startBroker, token, until } from './broker.mjs';

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

// A STOMP session over ws: CONNECT and SUBSCRIBE to /topic/flood; counts the MESSAGEs it gets.
function stompSocket(wsUrl, i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${wsUrl}?access_token=${token(`flood${i}`)}`, ['v12.stomp']);
    ws.received = 0;
    ws.on('message', (data) => { if (String(data).startsWith('MESSAGE')) ws.received++; });
    ws.on('open', () => {
      ws.send('CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0SUBSCRIBE\nid:1\ndestination:/topic/flood\nreceipt:r\n\n\0');
      ws.once('message', () => resolve(ws));          // the RECEIPT: subscribed
    });
    ws.on('unexpected-response', (req, res) => { ws.refusedWith = res.statusCode; resolve(ws); });
    ws.on('error', () => resolve(ws));
    setTimeout(() => resolve(ws), 15_000).unref();
  });
}

// GET /ws with upgrade headers: the status and body the broker answers.
function upgradeAttempt(url) {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/ws`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'v12.stomp' } });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], retryAfter: res.headers['retry-after'], body }));
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: 101 }); });
    req.on('error', reject);
    req.end();
  });
}

test('under ulimit -n 1000, 2,000 WebSockets and 2,000 silent TCP connections are refused past the limit and the broker lives on',
  { timeout: 240_000 }, async (t) => {
    const broker = await startBroker({ single: true, fdLimit: 1000, args: ['--Broker:ConnectTimeoutMs=5000', '--Logging:LogLevel:WsBroker.Broker.Hosting=Information'] });
    const sockets = [];
    const raw = [];
    try {
      const rssBefore = rssKiB(broker.pid);
      for (let i = 0; i < 2000; i += 100) {
        sockets.push(...await Promise.all(Array.from({ length: 100 }, (_, k) => stompSocket(broker.wsUrl, i + k))));
      }
      const live = () => sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
      const held = live().length;
      const refused503 = sockets.filter((ws) => ws.refusedWith === 503).length;
      t.diagnostic(`WebSockets: ${held} held, ${refused503} refused with 503, ${2000 - held - refused503} closed at once`);
      assert.ok(held >= 300, `the broker holds what its limit allows (${held})`);
      assert.ok(held < 1000, `and no more (${held})`);
      assert.ok(refused503 > 0, 'some upgrades were answered 503');
      const answer = await upgradeAttempt(broker.url).catch((e) => ({ status: 'closed', error: e.message }));
      if (answer.status === 503) {
        assert.match(answer.type, /application\/problem\+json/);
        assert.equal(JSON.parse(answer.body).title, 'too many connections');
        assert.equal(answer.retryAfter, '5');
      } else assert.equal(answer.status, 'closed', `a full broker refuses an upgrade: ${JSON.stringify(answer)}`);

      let connected = 0;
      for (let i = 0; i < 2000; i++) {
        const s = connect(broker.port, '127.0.0.1');
        s.on('connect', () => connected++);
        s.on('error', () => {});
        raw.push(s);
        if (i % 250 === 249) await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 2000));
      t.diagnostic(`raw TCP: ${connected} connected, ${raw.filter((s) => s.destroyed).length} closed by now`);

      // Alive and bounded; health answers (once the silent sockets' header timeout, Broker:ConnectTimeoutMs, has passed).
      assert.equal(process.kill(broker.pid, 0), true);
      let health = 0;
      for (const deadline = Date.now() + 30_000; health !== 200 && Date.now() < deadline;) {
        health = await fetch(`${broker.url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
        if (health !== 200) await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(health, 200, '/healthz answers');
      const rssAfter = rssKiB(broker.pid);
      t.diagnostic(`RSS ${Math.round(rssBefore / 1024)} MiB before, ${Math.round(rssAfter / 1024)} MiB after`);
      assert.ok(rssAfter < rssBefore + 200 * 1024, `RSS stays bounded (${rssBefore} -> ${rssAfter} KiB)`);

      // The connections it took are still served: one SEND reaches every one of them.
      const stillLive = live();
      assert.equal(stillLive.length, held, 'no held connection was dropped');
      stillLive[0].send('SEND\ndestination:/topic/flood\n\nstill serving\0');
      await until(() => stillLive.every((ws) => ws.received === 1), 15_000, 'every held connection to get the message');

      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      const refused = (reason) => Number(new RegExp(`wsbroker_connections_refused_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
      t.diagnostic(`refused: websocket_limit ${refused('websocket_limit')}, http_limit ${refused('http_limit')}`);
      assert.ok(refused('websocket_limit') >= refused503, 'the 503s are counted');
      assert.ok(refused('http_limit') > 0, 'the connections closed at once are counted');
      const lines = broker.output().split('\n').filter((l) => l.includes('connections refused, the broker is full')).length;
      assert.ok(lines >= 1 && lines <= 5, `refusals are logged, a few times only (${lines} lines)`);
      assert.match(broker.output(), /open files: soft limit 1000 raised to 1000 \(hard limit 1000\)/);

      // Room again: a normal client connects, subscribes, publishes and receives.
      for (const ws of sockets) ws.terminate();
      for (const s of raw) s.destroy();
      const client = new Client({ webSocketFactory: () => new WebSocket(broker.wsUrl, ['v12.stomp']),
        connectHeaders: { Authorization: `Bearer ${token('client1')}` }, reconnectDelay: 200, debug: () => {} });
      const got = [];
      let resolveGot;
      const gotOne = new Promise((r) => { resolveGot = r; });
      client.onConnect = () => {
        client.subscribe('/topic/after', (m) => { got.push(m.body); resolveGot(); }, { receipt: 'sub' });
        client.watchForReceipt('sub', () => client.publish({ destination: '/topic/after', body: 'back to normal' }));
      };
      client.activate();
      await Promise.race([gotOne, new Promise((_, no) => setTimeout(() => no(new Error('no message after the flood')), 20_000))]);
      assert.deepEqual(got, ['back to normal']);
      await client.deactivate();
    } finally {
      for (const ws of sockets) ws.terminate();
      for (const s of raw) s.destroy();
      await broker.dispose();
    }
  });
