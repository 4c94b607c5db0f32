import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Conversation, TypingThrottle, decodeToken, compareIds, pageFor, fromFrame } from '../chat-model.js';

const msg = (id, sender, receiver, body = `m${id}`) => ({ id: String(id), sender, receiver, body, timestamp: 1, seen: false, seenAt: null });

test('64-bit ids compare exactly (beyond Number precision)', () => {
  assert.equal(compareIds('9007199254740993', '9007199254740992'), 1);
  assert.equal(compareIds('5', '40'), -1);
});

test('messages are ordered by id, deduplicated, and my echo replaces the local placeholder', () => {
  const c = new Conversation('admin1', 'client1', 'client1');
  const local = c.addLocal('hello');
  assert.equal(c.messages.at(-1), local);
  c.add(msg(30, 'admin1', 'client1'), msg(10, 'admin1', 'client1'));
  c.add(msg(10, 'admin1', 'client1'));
  c.add(msg(40, 'client1', 'admin1', 'hello'));
  assert.deepEqual(c.messages.map((m) => m.id), ['10', '30', '40']);
  assert.equal(c.oldestId, '10');
  assert.equal(c.last.id, '40');
  assert.equal(local.echoId, '40', 'the placeholder remembers its echo, so a later rejection marks that message');
});

test('unread counts messages to me not seen; up-to marks only mine up to the id', () => {
  const c = new Conversation('admin1', 'client1', 'admin1');
  c.add(msg(1, 'client1', 'admin1'), msg(2, 'client1', 'admin1'), msg(3, 'admin1', 'client1'), msg(4, 'client1', 'admin1'));
  assert.equal(c.unread, 3);
  assert.equal(c.newestUnreadId, '4');
  c.markSeen({ upTo: '2', reader: 'admin1', seenAt: 99 });
  assert.equal(c.unread, 1);
  assert.equal(c.byId.get('3').seen, false, "the reader's own message is not marked");
  c.markSeen({ ids: ['4'], reader: 'admin1', seenAt: 100 });
  assert.equal(c.unread, 0);
  assert.equal(c.byId.get('4').seenAt, 100);
});

test('typing shows for a while and clears when told', () => {
  const c = new Conversation('a', 'c', 'c');
  c.setTyping(true, 1000);
  assert.equal(c.isTyping(1500), true);
  assert.equal(c.isTyping(8000), false);
  c.setTyping(true, 1000);
  c.setTyping(false, 1200);
  assert.equal(c.isTyping(1300), false);
});

test('typing is throttled to one notice per interval, and stop is sent once', () => {
  let now = 0;
  const sent = [];
  const t = new TypingThrottle((typing) => sent.push(typing), 2000, () => now);
  t.keystroke(); now = 500; t.keystroke(); now = 1900; t.keystroke();
  now = 2100; t.keystroke();
  t.stop(); t.stop();
  assert.deepEqual(sent, [true, true, false]);
});

test('tokens are decoded for the page; pages by role', () => {
  const payload = Buffer.from(JSON.stringify({ sub: 'client1', role: 'client', name: 'Carla Ç', exp: 2 })).toString('base64url');
  assert.deepEqual(decodeToken(`x.${payload}.y`), { userId: 'client1', role: 'client', name: 'Carla Ç', exp: 2 });
  assert.throws(() => decodeToken('nope'));
  assert.equal(pageFor('admin'), 'admin.html');
  assert.equal(pageFor('client'), 'customer.html');
});

test('a MESSAGE frame becomes a chat message', () => {
  const m = fromFrame({ headers: { 'message-id': '7', sender: 'c', receiver: 'a', timestamp: '123' }, text: 'hi' }, 'a', 'c');
  assert.deepEqual([m.id, m.sender, m.receiver, m.body, m.timestamp], ['7', 'c', 'a', 'hi', 123]);
});
