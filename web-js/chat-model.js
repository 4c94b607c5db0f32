// Chat logic shared by the customer and administrator pages, free of DOM and network so Node can test it.

/** The claims of a JWT (no verification: the broker verifies; the page only needs to know who it is). */
export function decodeToken(token) {
  const part = String(token).split('.')[1];
  if (!part) throw new Error('not a JWT');
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const json = typeof atob === 'function' ? decodeURIComponent(escape(atob(base64))) : Buffer.from(base64, 'base64').toString('utf8');
  const claims = JSON.parse(json);
  return { userId: claims.sub, role: claims.role, name: claims.name ?? claims.sub, exp: claims.exp };
}

export const conversationDestination = (adminId, clientId) => `/topic/private-chat/${adminId}/${clientId}`;

/** Message ids are 64-bit decimal strings: compare them as BigInts, never as numbers. */
export const compareIds = (a, b) => { const x = BigInt(a), y = BigInt(b); return x < y ? -1 : x > y ? 1 : 0; };

/** A message from a STOMP MESSAGE frame (a live delivery, or a replayed one: header `replay:true`). */
export function fromFrame(frame, adminId, clientId) {
  return {
    id: frame.headers['message-id'],
    adminId, clientId,
    sender: frame.headers.sender,
    receiver: frame.headers.receiver,
    body: frame.body,
    timestamp: Number(frame.headers.timestamp ?? Date.now()),
    clientMsgId: frame.headers['client-msg-id'] ?? null,
    seen: false, seenAt: null, deliveredAt: null, status: 'sent',
  };
}

/** A message from the REST history (items carry clientMsgId, deliveredAt, seenAt where the broker stores them). */
export function fromHistory(m) {
  return { ...m, clientMsgId: m.clientMsgId ?? null, deliveredAt: m.deliveredAt ?? null, seen: !!m.seen, seenAt: m.seenAt ?? null, status: 'sent' };
}

/** The empty MESSAGE that ends a replay cut at the broker's maximum: the rest is paged from the REST history. */
export const isTruncatedReplay = (frame) => frame.headers.replay === 'truncated';

/**
 * A `client-msg-id` for a chat SEND: 32 hex digits from the browser's random source (within [A-Za-z0-9_-], 1-64
 * characters). crypto.getRandomValues rather than randomUUID: the latter is missing on plain-http pages not on localhost.
 */
export function newClientMsgId() {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A notice on /topic/seen/{me}: `status:delivered` (one message reached its recipient) or `status:seen` (the default). */
export function parseNotice(frame) {
  const h = frame.headers;
  let body = {};
  try { body = frame.body ? JSON.parse(frame.body) : {}; } catch { /* headers only */ }
  const ids = body.messageIds ?? (h['message-id'] ? [h['message-id']] : []);
  const status = h.status ?? body.status ?? 'seen';
  const at = (value) => (value === undefined || value === null ? Date.now() : Number(value));
  return {
    status,
    ids: ids.map(String),
    reader: h.reader ?? body.reader ?? h.receiver ?? body.receiver ?? null,
    upTo: h['up-to'] ?? null,
    seenAt: status === 'seen' ? at(body.seenAt ?? h['seen-at']) : null,
    deliveredAt: status === 'delivered' ? at(h['delivered-at'] ?? body.deliveredAt) : null,
  };
}

/** Where a subscription resumes: the newest message id it has handed over (`since:0` when none). */
export class ResumePoint {
  constructor(id) { this.id = id ? String(id) : '0'; }
  note(id) { if (id && compareIds(id, this.id) > 0) this.id = String(id); }
  get since() { return this.id; }
}

/**
 * The live inbox (/user/queue/inbox): my conversations by peer, from a snapshot and the deltas after it. Every frame
 * carries whole conversations (a delta its one conversation as it is now), so applying one twice changes nothing; a
 * deleted peer's conversation leaves. `since` is the newest inbox id taken: a resubscribe asks for what came after it,
 * and the broker answers with just those changes or, when it cannot tell them, a new snapshot that replaces the list.
 */
export class Inbox {
  constructor() {
    this.byPeer = new Map();               // peerId -> { peerId, peerName, adminId, clientId, lastMessageId, lastSender, preview, lastMessageAt, unread, online, deleted }
    this.lastId = null;
    this.loaded = false;
  }

  /** Applies one MESSAGE of /user/queue/inbox; returns { kind, conversation } (conversation: null for a snapshot). */
  apply(frame) {
    const body = JSON.parse(frame.body);
    const id = frame.headers['message-id'] ?? body.id;
    let conversation = null;
    if (body.kind === 'snapshot') {
      this.byPeer = new Map(body.conversations.map((c) => [c.peerId, c]));
      this.loaded = true;
    } else {
      conversation = body.conversation;
      if (conversation.deleted) this.byPeer.delete(conversation.peerId);
      else this.byPeer.set(conversation.peerId, conversation);
    }
    if (!this.lastId || compareIds(id, this.lastId) > 0) this.lastId = String(id);
    return { kind: body.kind, conversation };
  }

  /** The headers of the next SUBSCRIBE: `since:` the newest inbox id taken, none before the first snapshot. */
  get subscribeHeaders() { return this.lastId ? { since: this.lastId } : {}; }

  /** Newest conversation first. */
  get conversations() { return [...this.byPeer.values()].sort((a, b) => compareIds(b.lastMessageId, a.lastMessageId)); }

  /** The newest message of any conversation (where a subscription to all of them starts), or null. */
  get newestMessageId() { return this.conversations[0]?.lastMessageId ?? null; }
}

/**
 * Pages the REST history (newest first) back to `since`: what a replay cut at the broker's maximum left out.
 * fetchPage(before) answers { messages, nextBefore } like GET /api/conversations/{a}/{c}/messages.
 */
export async function historySince(fetchPage, since, maxPages = 100) {
  const all = [];
  let before = null;
  for (let pages = 0; pages < maxPages; pages++) {
    const page = await fetchPage(before);
    const newer = page.messages.filter((m) => compareIds(m.id, since) > 0);
    all.push(...newer);
    if (newer.length < page.messages.length || page.nextBefore === null || page.messages.length === 0) break;
    before = page.nextBefore;
  }
  return all;
}

/** One conversation as one side sees it: ordered messages, unread count, seen marks, typing. */
export class Conversation {
  constructor(adminId, clientId, me) {
    this.adminId = adminId;
    this.clientId = clientId;
    this.me = me;
    this.other = me === adminId ? clientId : adminId;
    this.byId = new Map();
    this.local = [];                       // sent by me, not yet confirmed with an id: { localId, body, status }
    this.marks = new Map();                // delivered/seen notices for messages not here yet: id -> { deliveredAt, seenAt }
    this.typingUntil = 0;
    this.hasOlder = true;
  }

  get destination() { return conversationDestination(this.adminId, this.clientId); }

  /**
   * Adds or updates messages (live, replayed or from history); returns true when something new arrived. Each message
   * is held once, by message-id; my own message replaces its pending placeholder, found by client-msg-id (or, from a
   * broker that does not echo client-msg-id, by text).
   */
  add(...messages) {
    let added = false;
    for (const m of messages) {
      const existing = this.byId.get(m.id);
      if (existing) {
        Object.assign(existing, { ...m, seen: existing.seen || !!m.seen, seenAt: existing.seenAt ?? m.seenAt ?? null,
          deliveredAt: existing.deliveredAt ?? m.deliveredAt ?? null, clientMsgId: existing.clientMsgId ?? m.clientMsgId ?? null });
        continue;
      }
      const entry = { status: 'sent', deliveredAt: null, seen: false, seenAt: null, ...m };
      const mark = this.marks.get(m.id);
      if (mark) {
        this.marks.delete(m.id);
        entry.deliveredAt ??= mark.deliveredAt ?? null;
        if (mark.seenAt && !entry.seen) { entry.seen = true; entry.seenAt = mark.seenAt; }
      }
      this.byId.set(m.id, entry);
      added = true;
      if (m.sender === this.me) {
        const i = m.clientMsgId
          ? this.local.findIndex((l) => l.clientMsgId === m.clientMsgId)
          : this.local.findIndex((l) => l.body === m.body && l.status !== 'failed');
        if (i >= 0) { this.local[i].echoId = m.id; this.local.splice(i, 1); }
      }
    }
    return added;
  }

  /** A RECEIPT for my pending message: with its message-id (stored) the placeholder becomes that message. */
  confirm(local, messageId) {
    local.status = 'sent';
    if (!messageId) return;                  // no message-id in the RECEIPT: the echo replaces the placeholder
    local.echoId = messageId;
    const i = this.local.indexOf(local);
    if (i >= 0) this.local.splice(i, 1);
    if (!this.byId.has(messageId)) {
      const { localId, echoId, error, ...message } = local;
      this.add({ ...message, id: messageId, adminId: this.adminId, clientId: this.clientId, status: 'sent' });
    }
  }

  /** A delivered notice: the recipient's session has these messages of mine. */
  markDelivered({ ids = [], deliveredAt }) {
    for (const id of ids) {
      const m = this.byId.get(id);
      if (m) m.deliveredAt ??= deliveredAt;
      else this.marks.set(id, { ...this.marks.get(id), deliveredAt });
    }
  }

  /** Messages oldest first, then my not-yet-echoed local ones. */
  get messages() {
    return [...this.byId.values()].sort((a, b) => compareIds(a.id, b.id)).concat(this.local);
  }

  get lastId() { return this.last?.id ?? null; }

  get last() { const list = [...this.byId.values()].sort((a, b) => compareIds(a.id, b.id)); return list[list.length - 1] ?? null; }

  get oldestId() { const list = [...this.byId.keys()].sort(compareIds); return list[0] ?? null; }

  /** Messages to me that I have not marked seen. */
  get unread() { return [...this.byId.values()].filter((m) => m.receiver === this.me && !m.seen).length; }

  /** The newest message to me not yet seen (what an "up-to" read receipt should name), or null. */
  get newestUnreadId() {
    const unread = [...this.byId.values()].filter((m) => m.receiver === this.me && !m.seen).sort((a, b) => compareIds(a.id, b.id));
    return unread.length ? unread[unread.length - 1].id : null;
  }

  /** Marks messages seen: by id list, or everything to `reader` up to `upTo`. */
  markSeen({ ids = [], upTo = null, reader, seenAt }) {
    for (const id of ids) if (!this.byId.has(id)) this.marks.set(id, { ...this.marks.get(id), seenAt });
    for (const m of this.byId.values()) {
      if (m.receiver !== reader) continue;
      if (ids.includes(m.id) || (upTo !== null && compareIds(m.id, upTo) <= 0)) {
        if (!m.seen) { m.seen = true; m.seenAt = seenAt; }
      }
    }
  }

  addLocal(body) {
    const clientMsgId = newClientMsgId();
    const entry = { localId: `local-${clientMsgId}`, clientMsgId, sender: this.me, receiver: this.other, body, timestamp: Date.now(), status: 'sending' };
    this.local.push(entry);
    return entry;
  }

  setTyping(typing, now = Date.now()) { this.typingUntil = typing ? now + 6000 : 0; }

  isTyping(now = Date.now()) { return now < this.typingUntil; }
}

/** Sends "typing" at most once per interval while keys are pressed, and "stopped" once when the user stops or sends. */
export class TypingThrottle {
  constructor(send, interval = 2000, now = () => Date.now()) {
    this.send = send; this.interval = interval; this.now = now; this.lastSent = 0; this.active = false;
  }

  keystroke() {
    const now = this.now();
    if (!this.active || now - this.lastSent >= this.interval) {
      this.active = true;
      this.lastSent = now;
      this.send(true);
    }
  }

  stop() {
    if (!this.active) return;
    this.active = false;
    this.lastSent = 0;
    this.send(false);
  }
}

export function formatTime(ms, now = Date.now()) {
  const d = new Date(ms);
  const sameDay = new Date(now).toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

/** Where to go after login. */
export const pageFor = (role) => (role === 'admin' ? 'admin.html' : 'customer.html');
