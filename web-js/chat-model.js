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

/** A message from a STOMP MESSAGE frame. */
export function fromFrame(frame, adminId, clientId) {
  return {
    id: frame.headers['message-id'],
    adminId, clientId,
    sender: frame.headers.sender,
    receiver: frame.headers.receiver,
    body: frame.text,
    timestamp: Number(frame.headers.timestamp ?? Date.now()),
    seen: false, seenAt: null, status: 'sent',
  };
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
    this.typingUntil = 0;
    this.hasOlder = true;
  }

  get destination() { return conversationDestination(this.adminId, this.clientId); }

  /** Adds or updates messages (live or from history); returns true when something new arrived. */
  add(...messages) {
    let added = false;
    for (const m of messages) {
      const existing = this.byId.get(m.id);
      if (existing) { Object.assign(existing, { ...m, seen: existing.seen || m.seen, seenAt: existing.seenAt ?? m.seenAt }); continue; }
      this.byId.set(m.id, { status: 'sent', ...m });
      added = true;
      // A live echo of my own pending message replaces the local placeholder.
      if (m.sender === this.me) {
        const i = this.local.findIndex((l) => l.body === m.body && l.status !== 'failed');
        if (i >= 0) { this.local[i].echoId = m.id; this.local.splice(i, 1); }
      }
    }
    return added;
  }

  /** Messages oldest first, then my not-yet-echoed local ones. */
  get messages() {
    return [...this.byId.values()].sort((a, b) => compareIds(a.id, b.id)).concat(this.local);
  }

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
    for (const m of this.byId.values()) {
      if (m.receiver !== reader) continue;
      if (ids.includes(m.id) || (upTo !== null && compareIds(m.id, upTo) <= 0)) {
        if (!m.seen) { m.seen = true; m.seenAt = seenAt; }
      }
    }
  }

  addLocal(body) {
    const entry = { localId: `local-${Math.random().toString(36).slice(2)}`, sender: this.me, receiver: this.other, body, timestamp: Date.now(), status: 'sending' };
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
