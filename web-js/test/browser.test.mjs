// The pages in a real browser: headless Chromium from Debian driven by playwright-core, against a real WsBroker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startBroker, freePort } from '../../tests/js/broker.mjs';

const CHROMIUM = '/usr/bin/chromium';
const screenshots = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots');
// The pages under test (this web-js/), not the copy a possibly older build left next to the broker binary.
const webRoot = ['--Chat:WebRoot=' + join(dirname(fileURLToPath(import.meta.url)), '..')];
let broker, port, browser, dataDir;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    // The test installs what it needs: Debian's chromium (CI runs as root).
    const install = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-qq', 'chromium'],
      { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
    if (install.status !== 0) throw new Error('could not install chromium (apt-get install chromium)');
  }
  port = await freePort();
  broker = await startBroker({ port, args: webRoot });
  dataDir = broker.dataDir;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await broker?.dispose();
});

async function login(userId, viewport = { width: 1200, height: 800 }, base = broker.url) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', (e) => { page.errors ??= []; page.errors.push(e.message); });
  page.sent = [];                                     // every STOMP frame the page sends, as text
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => page.sent.push(String(payload))));
  await page.goto(`${base}/index.html`);
  await page.click(`button[data-user="${userId}"]`);
  await page.waitForURL(/(customer|admin)\.html/);
  await page.waitForSelector('#status-pill[data-state="connected"]', { timeout: 10_000 });
  return page;
}

const pane = (admin) => admin.locator('.pane:not([hidden])');

async function tokenFor(userId, base = broker.url) {
  const response = await fetch(`${base}/api/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }) });
  return (await response.json()).token;
}

/** The conversation as the database holds it (REST history, oldest first): [{ id, body }]. */
async function stored(adminId, clientId) {
  const response = await fetch(`${broker.url}/api/conversations/${adminId}/${clientId}/messages?limit=100`,
    { headers: { authorization: `Bearer ${await tokenFor(adminId)}` } });
  return (await response.json()).messages.reverse().map((m) => ({ id: m.id, body: m.body, deliveredAt: m.deliveredAt ?? null }));
}

/** What a message list shows: [{ id, body }] in screen order (a pending message has no numeric id). */
const shown = (list) => list.locator('li').evaluateAll((items) => items.map((li) => ({ id: li.dataset.id, body: li.querySelector('.bubble').textContent })));

/** Waits until the list shows exactly the database's messages, each once, in id order; then asserts it. */
async function sameAsDatabase(list, adminId, clientId, what) {
  let want = [], got = [];
  for (const end = Date.now() + 15_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
    want = (await stored(adminId, clientId)).map(({ id, body }) => ({ id, body }));
    got = await shown(list);
    if (JSON.stringify(want) === JSON.stringify(got)) break;
  }
  assert.deepEqual(got, want, `${what} shows the database's messages, each once, in order`);
}

test('an admin and two customers chat: typing, seen ticks, unread counts, history after reload, a broker restart', async () => {
  const admin = await login('admin1');
  const carla = await login('client1');
  const chris = await login('client2', { width: 375, height: 740 });          // phone width

  // The customer sees the administrator online and can pick it; her first message puts her on the administrator's list.
  await carla.waitForSelector('#admins button[data-user="admin1"] .dot.online');
  await carla.fill('#input', 'Good morning');
  await carla.press('#input', 'Enter');
  await admin.click('#customers button[data-user="client1"]');
  await admin.waitForSelector('.pane:not([hidden]) textarea');

  // Typing shows on the other side and clears when the message is sent.
  await carla.fill('#input', 'Hello, my meter');
  await carla.type('#input', ' shows zero');
  await pane(admin).locator('.typing').filter({ hasText: 'Carla Client is typing…' }).waitFor({ timeout: 5000 });
  await carla.press('#input', 'Enter');
  await pane(admin).locator('.messages li', { hasText: 'Hello, my meter shows zero' }).waitFor();
  await pane(admin).locator('.typing[data-typing="no"]').waitFor({ state: 'attached', timeout: 5000 });

  // The admin has the conversation in front: the customer gets the seen tick.
  await carla.locator('.message.mine', { hasText: 'Hello, my meter shows zero' }).locator('.status.seen').waitFor({ timeout: 5000 });
  assert.match(await carla.locator('.message.mine .status').first().textContent(), /Seen/);

  // A second customer writes while the admin looks at the first: the unread count rises in the list.
  await chris.fill('#input', 'Hi, I moved house last week');
  await chris.press('#input', 'Enter');
  await admin.locator('#customers button[data-user="client2"] .badge', { hasText: '1' }).waitFor({ timeout: 5000 });
  assert.equal(await chris.locator('.message.mine .status.seen').count(), 0, 'not seen while the admin has not opened it');
  // Delivered, not yet seen: the admin's session has the message but the conversation is not in front.
  // WAITS FOR THE BROKER: issue 14 "Delivered status" (`status:delivered` on /topic/seen/{sender}); asserted at the end
  // of this test so that everything after it still runs against a broker without it.
  const deliveredTick = await chris.locator('.message.mine .status[data-status="delivered"]', { hasText: '✓✓ Delivered' })
    .waitFor({ timeout: 5000 }).then(() => true, () => false);

  // The admin answers both at once from two tabs.
  await pane(admin).locator('textarea').fill('Let me check your readings, Carla.');
  await pane(admin).locator('textarea').press('Enter');
  await admin.click('#customers button[data-user="client2"]');
  await admin.locator('#customers button[data-user="client2"] .badge').waitFor({ state: 'detached', timeout: 5000 });
  await chris.locator('.message.mine .status.seen').waitFor({ timeout: 5000 });
  await pane(admin).locator('textarea').fill('Welcome to your new home, Chris!');
  await pane(admin).locator('textarea').press('Enter');
  await carla.locator('#messages li', { hasText: 'Let me check your readings, Carla.' }).waitFor();
  await chris.locator('#messages li', { hasText: 'Welcome to your new home, Chris!' }).waitFor();
  assert.equal(await carla.locator('#messages li', { hasText: 'Chris' }).count(), 0, 'no customer sees another customer');
  assert.equal(await admin.locator('.tab').count(), 2);

  // Reload: the history is back, in order.
  await carla.reload();
  await carla.waitForSelector('#status-pill[data-state="connected"]');
  await carla.locator('#messages li').nth(1).waitFor();
  const texts = await carla.locator('#messages li .bubble').allTextContents();
  assert.deepEqual(texts.slice(-2), ['Hello, my meter shows zero', 'Let me check your readings, Carla.']);

  mkdirSync(screenshots, { recursive: true });
  await admin.screenshot({ path: join(screenshots, 'admin.png') });
  await carla.screenshot({ path: join(screenshots, 'customer.png') });
  await chris.screenshot({ path: join(screenshots, 'customer-phone.png') });

  // The broker restarts mid-conversation: the pages say so, reconnect, and a message typed meanwhile is not lost.
  await broker.stop();
  const sentBeforeRestart = carla.sent.length;
  await carla.waitForSelector('#status-pill:not([data-state="connected"])', { timeout: 10_000 });
  assert.equal(await carla.locator('#banner').isVisible(), true);
  await carla.fill('#input', 'Are you still there?');
  await carla.press('#input', 'Enter');
  broker = await startBroker({ port, dataDir, args: webRoot });
  await carla.waitForSelector('#status-pill[data-state="connected"]', { timeout: 20_000 });
  await admin.waitForSelector('#status-pill[data-state="connected"]', { timeout: 20_000 });
  await admin.click('#customers button[data-user="client1"]');
  await pane(admin).locator('.messages li', { hasText: 'Are you still there?' }).waitFor({ timeout: 10_000 });
  const still = carla.locator('.message.mine', { hasText: 'Are you still there?' });
  await still.locator('.status:not([data-status="sending"])').waitFor({ timeout: 10_000 });
  assert.match(await still.locator('.status').getAttribute('data-status'), /^(sent|delivered|seen)$/, 'stored, not failed');
  // On the wire: the customer resubscribed with since: (the last id it held) and resent with its client-msg-id.
  const afterRestart = carla.sent.slice(sentBeforeRestart);
  const resubscribe = afterRestart.find((f) => f.startsWith('SUBSCRIBE\n') && f.includes('destination:/topic/private-chat/admin1/client1'));
  assert.match(resubscribe ?? '', /\nsince:[1-9]\d*\n/, 'resubscribed with since: the last message id held');
  const resends = afterRestart.filter((f) => f.startsWith('SEND\n') && f.includes('Are you still there?'));
  assert.ok(resends.length >= 1 && resends.every((f) => /\nclient-msg-id:[A-Za-z0-9_-]{1,64}\n/.test(f)), 'sent with a client-msg-id');
  assert.equal(new Set(resends.map((f) => /\nclient-msg-id:(.*)\n/.exec(f)[1])).size, 1, 'every resend has the same client-msg-id');
  // The conversation goes on after the restart in both directions.
  await pane(admin).locator('textarea').fill('Yes, still here: the broker restarted.');
  await pane(admin).locator('textarea').press('Enter');
  await carla.fill('#input', 'Good, thanks');
  await carla.press('#input', 'Enter');
  await carla.locator('#messages li', { hasText: 'Yes, still here' }).waitFor({ timeout: 10_000 });
  await pane(admin).locator('.messages li', { hasText: 'Good, thanks' }).waitFor({ timeout: 10_000 });
  // Both pages hold exactly what the database holds: no gap, no duplicate, same order.
  await sameAsDatabase(carla.locator('#messages'), 'admin1', 'client1', 'the customer page (after the restart)');
  await sameAsDatabase(pane(admin).locator('.messages'), 'admin1', 'client1', 'the administrator page (after the restart)');
  await carla.locator('.message.mine', { hasText: 'Good, thanks' }).locator('.status.seen').waitFor({ timeout: 10_000 });
  // Stored exactly once: after a reload the history shows it once.
  await carla.reload();
  await carla.locator('#messages li', { hasText: 'Are you still there?' }).first().waitFor({ timeout: 10_000 });
  assert.equal(await carla.locator('#messages li', { hasText: 'Are you still there?' }).count(), 1);
  await sameAsDatabase(carla.locator('#messages'), 'admin1', 'client1', 'the customer page (after a reload)');

  // WAITS FOR THE BROKER (issue 14 "Delivered status"): the delivered tick seen above, and its time in the history.
  assert.ok(deliveredTick, 'the customer saw "✓✓ Delivered" before the administrator opened the conversation');
  const hello = (await stored('admin1', 'client2')).find((m) => m.body === 'Hi, I moved house last week');
  assert.ok(hello?.deliveredAt, 'the history holds deliveredAt');

  for (const page of [admin, carla, chris]) assert.deepEqual(page.errors ?? [], [], 'no script errors');
  await Promise.all([admin, carla, chris].map((p) => p.context().close()));
});

test('older history loads when scrolling up', async () => {
  const token = (await (await fetch(`${broker.url}/api/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"userId":"client3"}' })).json()).token;
  // Seed 45 messages over raw STOMP (no stompjs needed): one WebSocket, one SEND per message with a receipt at the end.
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`${broker.url.replace('http', 'ws')}/ws?access_token=${token}`, ['v12.stomp']);
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  const receipt = new Promise((ok) => ws.on('message', (data) => { if (String(data).includes('receipt-id:seeded')) ok(); }));
  let wire = 'CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0';
  for (let i = 1; i <= 45; i++) wire += `SEND\ndestination:/topic/private-chat/admin1/client3\n${i === 45 ? 'receipt:seeded\n' : ''}\nhistory ${i}\0`;
  ws.send(wire);
  await receipt;
  ws.close();
  const page = await login('client3');
  await page.locator('#messages li', { hasText: 'history 45' }).waitFor();
  assert.equal(await page.locator('#messages li').count(), 30, 'first page');
  await page.locator('#messages').evaluate((list) => { list.scrollTop = 0; list.dispatchEvent(new Event('scroll')); });
  // 'history 1' alone would also match 'history 16'..'history 19', which are on the first page already.
  await page.locator('#messages li', { hasText: /history 1(?!\d)/ }).waitFor({ timeout: 5000 });
  assert.equal(await page.locator('#messages li').count(), 45);
  await page.context().close();
});

test('a short-lived token is refreshed in band: POST /api/dev/token again, SEND /session/token, same connection', async () => {
  const response = await fetch(`${broker.url}/api/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"userId":"client2","lifetimeSeconds":4}' });
  const short = (await response.json()).token;
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [], sent = [];
  let sockets = 0;
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('websocket', (ws) => { sockets++; ws.on('framesent', ({ payload }) => sent.push(String(payload))); });
  await page.goto(`${broker.url}/customer.html#token=${short}`);
  await page.waitForSelector('#status-pill[data-state="connected"]', { timeout: 10_000 });
  // A 4 s token is refreshed after half of it (web-js connection.js refreshDelay); the RECEIPT makes the page keep it.
  const refreshed = await page.waitForFunction((old) => { const t = sessionStorage.getItem('wsbroker.token'); return t !== old && t; }, short, { timeout: 10_000 });
  const fresh = await refreshed.jsonValue();
  const exp = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).exp;
  assert.ok(exp(fresh) > exp(short), 'the new token expires later');
  const refresh = sent.find((f) => f.startsWith('SEND\n') && f.includes('destination:/session/token'));
  assert.match(refresh ?? '', new RegExp(`\\nauthorization:Bearer ${fresh}\\n`));
  assert.match(refresh ?? '', /\nreceipt:/);
  assert.equal(sockets, 1, 'no reconnect');
  assert.equal(await page.locator('#status-pill').getAttribute('data-state'), 'connected');
  assert.deepEqual(errors, [], 'no script errors');
  await context.close();
});

/** A STOMP session of `userId` without a browser (raw frames over `ws`): send() resolves with the RECEIPT's headers. */
async function stompAs(base, userId) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?access_token=${await tokenFor(userId, base)}`, ['v12.stomp']);
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  const waiting = new Map();                          // receipt id (or 'CONNECTED') -> resolve
  let pending = '';
  ws.on('message', (data) => {
    pending += String(data);
    for (let end; (end = pending.indexOf('\0')) >= 0; pending = pending.slice(end + 1)) {
      const [command, ...lines] = pending.slice(0, end).replace(/^\n+/, '').split('\n\n')[0].split('\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
      waiting.get(command === 'RECEIPT' ? headers['receipt-id'] : command)?.(headers);
    }
  });
  const answer = (key) => new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${userId}: no ${key}`)), 10_000);
    waiting.set(key, (headers) => { clearTimeout(timer); ok(headers); });
  });
  const connected = answer('CONNECTED');
  ws.send('CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0');
  await connected;
  let next = 0;
  return {
    send(destination, body = '', headers = {}) {
      const receipt = `r${++next}`;
      const answered = answer(receipt);
      ws.send(`SEND\ndestination:${destination}\n${Object.entries(headers).map(([k, v]) => `${k}:${v}\n`).join('')}receipt:${receipt}\n\n${body}\0`);
      return answered;
    },
    close: () => new Promise((ok) => { if (ws.readyState === WebSocket.CLOSED) ok(); else { ws.once('close', ok); ws.close(); } }),
  };
}

// Issue 16: the administrator's customer list comes from the live inbox (/user/queue/inbox) alone. On a broker of its
// own (its administrator starts with no conversation), customers and the administrator's other device act over raw STOMP
// while the page only listens; the page's network log (CDP) must show no HTTP request after the first snapshot, also
// across a broker restart (the page resubscribes with since: and the list is rebuilt from the inbox, not from REST).
test('the administrator list follows the inbox alone: new customer, unread up and down, online dot, a restart; no REST after load', async () => {
  const ownPort = await freePort();
  let own = await startBroker({ port: ownPort, args: webRoot });
  const ownData = own.dataDir;
  const sessions = [];
  try {
    const admin = await login('admin1', undefined, own.url);
    const list = admin.locator('#customers');
    await list.locator('li.none').waitFor({ timeout: 10_000 });             // the first snapshot: no conversation yet
    const requests = [];
    const cdp = await admin.context().newCDPSession(admin);
    cdp.on('Network.requestWillBeSent', (e) => { if (/^https?:/.test(e.request.url)) requests.push(`${e.request.method} ${e.request.url}`); });
    await cdp.send('Network.enable');
    const carla = list.locator('button[data-user="client1"]');

    // A new customer writes: she appears, online, with one unread message; a second message raises the count.
    let customer = await stompAs(own.url, 'client1');
    sessions.push(customer);
    await customer.send('/topic/private-chat/admin1/client1', 'Is my meter broken?');
    await carla.locator('.badge', { hasText: /^1$/ }).waitFor({ timeout: 5000 });
    await carla.locator('.dot.online').waitFor({ timeout: 5000 });
    assert.equal(await carla.locator('.preview').textContent(), 'Is my meter broken?');
    const second = await customer.send('/topic/private-chat/admin1/client1', 'It shows zero');
    await carla.locator('.badge', { hasText: /^2$/ }).waitFor({ timeout: 5000 });
    assert.equal(await carla.locator('.name').textContent(), 'Carla Client');
    // Another one writes: the newest conversation comes first.
    const other = await stompAs(own.url, 'client2');
    sessions.push(other);
    await other.send('/topic/private-chat/admin1/client2', 'Can I pay by card?');
    await list.locator('button[data-user="client2"] .badge', { hasText: /^1$/ }).waitFor({ timeout: 5000 });
    assert.deepEqual(await list.locator('button.contact').evaluateAll((b) => b.map((x) => x.dataset.user)), ['client2', 'client1']);
    mkdirSync(screenshots, { recursive: true });
    const box = await admin.locator('aside.customers').boundingBox();
    await admin.screenshot({ path: join(screenshots, 'admin-inbox.png'), clip: { ...box, height: 180 } });

    // The administrator reads them on another device: the count goes down here.
    const phone = await stompAs(own.url, 'admin1');
    sessions.push(phone);
    await phone.send('/topic/seen/client1', '', { 'up-to': second['message-id'] });
    await carla.locator('.badge').waitFor({ state: 'detached', timeout: 5000 });

    // The customer goes away and comes back: the online dot follows.
    await customer.close();
    await carla.locator('.dot:not(.online)').waitFor({ timeout: 5000 });
    customer = await stompAs(own.url, 'client1');
    sessions.push(customer);
    await carla.locator('.dot.online').waitFor({ timeout: 5000 });
    await Promise.all(sessions.map((s) => s.close()));

    // The broker restarts: the page reconnects and resubscribes with since: (a new process holds no inbox: it answers
    // with a snapshot), and the list is the same, still without a REST request.
    const sentBefore = admin.sent.length;
    await own.stop();
    await admin.waitForSelector('#status-pill:not([data-state="connected"])', { timeout: 10_000 });
    own = await startBroker({ port: ownPort, dataDir: ownData, args: webRoot });
    await admin.waitForSelector('#status-pill[data-state="connected"]', { timeout: 20_000 });
    await carla.locator('.dot:not(.online)').waitFor({ timeout: 10_000 });
    const resubscribe = admin.sent.slice(sentBefore).find((f) => f.startsWith('SUBSCRIBE\n') && f.includes('destination:/user/queue/inbox'));
    assert.match(resubscribe ?? '', /\nsince:[1-9]\d*\n/, 'the inbox resubscribed with since: the newest inbox id it held');
    assert.equal(await carla.locator('.preview').textContent(), 'It shows zero');
    assert.equal(await carla.locator('.badge').count(), 0);
    assert.deepEqual(requests, [], 'no HTTP request after the page loaded: the list lives on the WebSocket');
    assert.deepEqual(admin.errors ?? [], [], 'no script errors');
    await admin.context().close();
  } finally {
    await Promise.allSettled(sessions.map((s) => s.close()));
    await own.dispose();
    rmSync(ownData, { recursive: true, force: true });
  }
});
