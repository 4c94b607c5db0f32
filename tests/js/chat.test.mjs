// One full support conversation through @stomp/stompjs against a running WsBroker in embedded mode
// (demo users admin1, client1..3; tokens from POST /api/dev/token, as the web pages get them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { startBroker, until } from './broker.mjs';

let broker;
before(async () => { broker = await startBroker({ args: ['--Chat:DemoUsers=true', '--Chat:DevTokens=true'] }); });
after(async () => { await broker?.dispose(); });

async function devToken(userId) {
  const response = await fetch(`${broker.url}/api/dev/token`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

async function chatter(userId) {
  const token = await devToken(userId);
  const inbox = [];
  const client = new Client({
    webSocketFactory: () => new WebSocket(`${broker.wsUrl}?access_token=${token}`, ['v12.stomp']),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('connect timed out')), 5000);
    client.onConnect = () => { clearTimeout(timer); ok(); };
    client.onStompError = (f) => { clearTimeout(timer); fail(new Error(f.headers.message)); };
    client.activate();
  });
  client.token = token;
  client.inbox = inbox;
  client.receipt = (send) => new Promise((ok, fail) => {
    const id = `r-${Math.random().toString(36).slice(2)}`;
    const timer = setTimeout(() => fail(new Error(`no receipt for ${id}`)), 5000);
    client.watchForReceipt(id, (frame) => { clearTimeout(timer); ok(frame); });
    send(id);
  });
  return client;
}

test('a customer and an administrator hold a whole support conversation', async () => {
  const admin = await chatter('admin1');
  const customer = await chatter('client2');
  try {
    const adminGot = [], customerGot = [], errors = [];
    admin.subscribe('/topic/private-chat/admin1/*', (m) => adminGot.push(m));
    admin.subscribe('/topic/typing/admin1', (m) => adminGot.push(m));
    customer.subscribe('/topic/private-chat/admin1/client2', (m) => customerGot.push(m));
    customer.subscribe('/topic/typing/client2', (m) => customerGot.push(m));
    customer.subscribe('/topic/seen/client2', (m) => customerGot.push(m));
    customer.subscribe('/user/queue/errors', (m) => errors.push(m));
    await Promise.all([admin, customer].map((c) => c.receipt((receipt) => c.publish({ destination: '/topic/sync', headers: { receipt } }))));

    customer.publish({ destination: '/topic/typing/admin1', body: JSON.stringify({ conversation: 'admin1/client2', typing: true }) });
    await until(() => adminGot.some((m) => m.headers.destination === '/topic/typing/admin1'), 5000, 'typing at admin');

    // The receipt comes only after the message is stored.
    await customer.receipt((receipt) => customer.publish({
      destination: '/topic/private-chat/admin1/client2', body: 'My bill doubled this month', headers: { receipt },
    }));
    await until(() => adminGot.some((m) => m.body === 'My bill doubled this month'), 5000, 'message at admin');
    const question = adminGot.find((m) => m.body === 'My bill doubled this month');
    assert.equal(question.headers.sender, 'client2');
    assert.equal(question.headers.receiver, 'admin1');

    admin.publish({ destination: '/topic/typing/client2', body: JSON.stringify({ typing: true }) });
    await admin.receipt((receipt) => admin.publish({
      destination: '/topic/private-chat/admin1/client2', body: 'Let me look at your meter readings.', headers: { receipt },
    }));
    await admin.receipt((receipt) => admin.publish({
      destination: '/topic/seen/client2', headers: { 'message-id': question.headers['message-id'], receipt },
    }));
    await until(() => customerGot.some((m) => m.headers.destination === '/topic/seen/client2'), 5000, 'seen at customer');
    const seen = customerGot.find((m) => m.headers.destination === '/topic/seen/client2');
    assert.equal(seen.headers.reader, 'admin1');
    assert.equal(seen.headers['message-id'], question.headers['message-id']);
    assert.ok(customerGot.some((m) => m.headers.destination === '/topic/typing/client2'), 'typing at customer');
    assert.ok(customerGot.some((m) => m.body === 'Let me look at your meter readings.'), 'answer at customer');
    assert.deepEqual(errors, []);

    const history = await (await fetch(`${broker.url}/api/conversations/admin1/client2/messages?limit=10`, {
      headers: { authorization: `Bearer ${customer.token}` },
    })).json();
    assert.deepEqual(history.messages.map((m) => m.body), ['Let me look at your meter readings.', 'My bill doubled this month']);
    assert.equal(history.messages[1].seen, true);
  } finally {
    await admin.deactivate();
    await customer.deactivate();
  }
});

test('a message to an unknown user is rejected on /user/queue/errors with the receipt id', async () => {
  const admin = await chatter('admin1');
  try {
    const errors = [];
    let receipted = false;
    admin.subscribe('/user/queue/errors', (m) => errors.push(m));
    admin.watchForReceipt('lost-1', () => { receipted = true; });
    admin.publish({ destination: '/topic/private-chat/admin1/nobody', body: 'hello?', headers: { receipt: 'lost-1' } });
    await until(() => errors.length === 1, 5000, 'rejection');
    assert.equal(errors[0].headers.message, 'could-not-send-message: receiver unknown');
    assert.equal(errors[0].headers['receipt-id'], 'lost-1');
    // A rejection replaces the receipt: a later frame proves nothing else came for lost-1.
    await admin.receipt((id) => admin.publish({ destination: '/topic/after', body: '', headers: { receipt: id } }));
    assert.equal(receipted, false, 'no RECEIPT for a rejected SEND');
  } finally { await admin.deactivate(); }
});
