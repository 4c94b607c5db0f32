import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Conversation, TypingThrottle, decodeToken, compareIds, pageFor, fromFrame, fromHistory, parseNotice, ResumePoint, historySince, isTruncatedReplay, newClientMsgId, Inbox } from '../chat-model.js';

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

test('a MESSAGE frame becomes a chat message, with its client-msg-id; a history item keeps delivered and seen times', () => {
  const m = fromFrame({ headers: { 'message-id': '7', sender: 'c', receiver: 'a', timestamp: '123', 'client-msg-id': 'k1' }, body: 'hi' }, 'a', 'c');
  assert.deepEqual([m.id, m.sender, m.receiver, m.body, m.timestamp, m.clientMsgId], ['7', 'c', 'a', 'hi', 123, 'k1']);
  const h = fromHistory({ id: '8', sender: 'a', receiver: 'c', body: 'x', timestamp: 1, seen: true, seenAt: 5, deliveredAt: 4, clientMsgId: 'k2' });
  assert.deepEqual([h.deliveredAt, h.seen, h.seenAt, h.clientMsgId, h.status], [4, true, 5, 'k2', 'sent']);
  assert.equal(isTruncatedReplay({ headers: { replay: 'truncated', 'replay-next': '9' } }), true);
  assert.equal(isTruncatedReplay({ headers: { replay: 'true' } }), false);
});

test('client-msg-ids fit the broker\'s charset and length, and differ', () => {
  const ids = new Set(Array.from({ length: 100 }, newClientMsgId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
});

test('my pending message is replaced by its echo found by client-msg-id, not by text; shown once, in id order', () => {
  const c = new Conversation('admin1', 'client1', 'client1');
  const first = c.addLocal('same text');
  const second = c.addLocal('same text');
  c.add({ ...msg(20, 'client1', 'admin1', 'same text'), clientMsgId: second.clientMsgId });
  assert.deepEqual(c.local, [first], 'the second one was echoed');
  c.add({ ...msg(20, 'client1', 'admin1', 'same text'), clientMsgId: second.clientMsgId, replay: true });   // replayed again
  c.add({ ...msg(10, 'admin1', 'client1', 'earlier') });
  assert.deepEqual(c.messages.map((m) => m.id ?? 'pending'), ['10', '20', 'pending']);
});

test('a RECEIPT with message-id turns the placeholder into the stored message; a later echo or replay adds nothing', () => {
  const c = new Conversation('admin1', 'client1', 'client1');
  const local = c.addLocal('hello');
  c.confirm(local, '55');
  assert.deepEqual(c.local, []);
  assert.equal(c.byId.get('55').body, 'hello');
  assert.equal(c.byId.get('55').clientMsgId, local.clientMsgId);
  assert.equal(c.add({ ...msg(55, 'client1', 'admin1', 'hello'), clientMsgId: local.clientMsgId }), false);
  assert.equal(c.messages.length, 1);
  // A RECEIPT without message-id (an older broker): marked sent, the echo replaces it.
  const old = c.addLocal('again');
  c.confirm(old, undefined);
  assert.equal(old.status, 'sent');
  c.add(msg(56, 'client1', 'admin1', 'again'));
  assert.deepEqual(c.messages.map((m) => m.id), ['55', '56']);
});

test('delivered and seen notices mark my messages, also when they arrive before the message', () => {
  const c = new Conversation('admin1', 'client1', 'client1');
  c.add(msg(1, 'client1', 'admin1'));
  c.markDelivered({ ids: ['1'], deliveredAt: 10 });
  c.markDelivered({ ids: ['2'], deliveredAt: 11 });
  c.markSeen({ ids: ['2'], reader: 'admin1', seenAt: 12 });
  c.add(msg(2, 'client1', 'admin1'));
  assert.equal(c.byId.get('1').deliveredAt, 10);
  assert.deepEqual([c.byId.get('2').deliveredAt, c.byId.get('2').seen, c.byId.get('2').seenAt], [11, true, 12]);
  c.markDelivered({ ids: ['1'], deliveredAt: 99 });
  assert.equal(c.byId.get('1').deliveredAt, 10, 'stored once');
});

test('notices on /topic/seen: status:delivered by headers, status:seen (or no status) by the JSON body', () => {
  const delivered = parseNotice({ headers: { status: 'delivered', 'message-id': '5', 'delivered-at': '100' }, body: '' });
  assert.deepEqual([delivered.status, delivered.ids, delivered.deliveredAt], ['delivered', ['5'], 100]);
  const seen = parseNotice({ headers: { status: 'seen', reader: 'admin1', 'seen-at': '7' }, body: '{"reader":"admin1","seenAt":7,"messageIds":["3","4"]}' });
  assert.deepEqual([seen.status, seen.ids, seen.reader, seen.seenAt], ['seen', ['3', '4'], 'admin1', 7]);
  assert.equal(parseNotice({ headers: {}, body: '{"reader":"a","seenAt":1,"messageIds":[]}' }).status, 'seen');
});

test('a resume point starts at 0 (or the newest known id) and only moves forward', () => {
  const r = new ResumePoint(null);
  assert.equal(r.since, '0');
  r.note('9007199254740993'); r.note('5'); r.note(undefined);
  assert.equal(r.since, '9007199254740993');
  assert.equal(new ResumePoint('40').since, '40');
});

test('after a truncated replay the REST history is paged back to since, no further', async () => {
  const stored = Array.from({ length: 250 }, (_, i) => ({ id: String(i + 1) }));
  const asked = [];
  const fetchPage = async (before) => {
    asked.push(before);
    const older = stored.filter((m) => !before || Number(m.id) < Number(before)).reverse().slice(0, 100);
    return { messages: older, nextBefore: older.length === 100 ? older.at(-1).id : null };
  };
  const missed = await historySince(fetchPage, '120');
  assert.deepEqual(missed.map((m) => m.id).sort(compareIds), stored.slice(120).map((m) => m.id));
  assert.deepEqual(asked, [null, '151']);
  assert.equal((await historySince(fetchPage, '0')).length, 250);
});

const entry = (peerId, lastMessageId, extra = {}) => ({ peerId, peerName: peerId, adminId: 'admin1', clientId: peerId, lastMessageId,
  lastSender: peerId, preview: `m${lastMessageId}`, lastMessageAt: 1, unread: 1, online: false, deleted: false, ...extra });
const inboxFrame = (id, kind, body) => ({ headers: { 'message-id': id, inbox: kind }, body: JSON.stringify({ kind, id, ...body }) });

test('the inbox: a snapshot, then whole conversations per delta; a delta applied twice changes nothing; deleted peers leave', () => {
  const inbox = new Inbox();
  assert.deepEqual(inbox.subscribeHeaders, {}, 'no since: before the first snapshot');
  inbox.apply(inboxFrame('100', 'snapshot', { conversations: [entry('client1', '9007199254740993'), entry('client2', '50')] }));
  assert.ok(inbox.loaded);
  assert.deepEqual(inbox.conversations.map((c) => c.peerId), ['client1', 'client2']);
  assert.equal(inbox.newestMessageId, '9007199254740993');
  const delta = inboxFrame('101', 'conversation', { conversation: entry('client2', '9007199254740999', { unread: 2 }) });
  assert.deepEqual(inbox.apply(delta), { kind: 'conversation', conversation: entry('client2', '9007199254740999', { unread: 2 }) });
  inbox.apply(delta);
  assert.deepEqual(inbox.conversations.map((c) => [c.peerId, c.unread]), [['client2', 2], ['client1', 1]]);
  inbox.apply(inboxFrame('102', 'unread', { conversation: entry('client2', '9007199254740999', { unread: 0 }) }));
  assert.equal(inbox.byPeer.get('client2').unread, 0);
  inbox.apply(inboxFrame('103', 'user', { conversation: entry('client1', '9007199254740993', { deleted: true }) }));
  assert.deepEqual([...inbox.byPeer.keys()], ['client2']);
  assert.deepEqual(inbox.subscribeHeaders, { since: '103' });
  // A resume may repeat older ids (each change keeps its own): since: stays the newest taken.
  inbox.apply(inboxFrame('102', 'unread', { conversation: entry('client2', '9007199254740999', { unread: 0 }) }));
  assert.deepEqual(inbox.subscribeHeaders, { since: '103' });
  // A new snapshot (the broker could not resume) replaces the list.
  inbox.apply(inboxFrame('200', 'snapshot', { conversations: [entry('client3', '7')] }));
  assert.deepEqual([...inbox.byPeer.keys()], ['client3']);
  assert.deepEqual(inbox.subscribeHeaders, { since: '200' });
});
