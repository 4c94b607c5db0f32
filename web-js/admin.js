// The administrator page: every customer with unread count, last message and online state, updated live;
// several conversations open at once in tabs, each with its own typing and seen indicators.
import { requireUser, api, connect, bindStatus, el, logout, untilLoaded } from './app.js';
import { fromFrame, formatTime, compareIds, isTruncatedReplay, parseNotice, ResumePoint } from './chat-model.js';
import { ChatPane } from './chat-pane.js';

const me = requireUser('admin');
document.getElementById('me').textContent = me.name;
document.getElementById('logout').addEventListener('click', async () => { await client.disconnect(); logout(); });

const client = connect(me.token);
const showStatus = bindStatus(client, document.getElementById('banner'), document.getElementById('status-pill'));
const customers = new Map();      // id -> { userId, name, online, unread, lastMessage }
const panes = new Map();          // clientId -> ChatPane
let active = null;

const names = (id) => (id === me.userId ? me.name : customers.get(id)?.name ?? id);
const customerList = document.getElementById('customers');
const tabs = document.getElementById('tabs');
const panesRoot = document.getElementById('panes');

function sortedCustomers() {
  return [...customers.values()].sort((a, b) => {
    const x = a.lastMessage?.id, y = b.lastMessage?.id;
    if (x && y) return compareIds(y, x);
    if (x || y) return x ? -1 : 1;
    return a.name.localeCompare(b.name);
  });
}

function renderCustomers() {
  customerList.replaceChildren(...sortedCustomers().map((c) => el('li', {},
    el('button', { type: 'button', class: 'contact', 'aria-current': active === c.userId ? 'true' : null, dataset: { user: c.userId }, onclick: () => open(c.userId) },
      el('span', { class: `dot ${c.online ? 'online' : ''}`, 'aria-hidden': 'true' }),
      el('span', { class: 'name' }, c.name),
      c.unread ? el('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null,
      el('span', { class: 'preview' }, c.lastMessage ? `${c.lastMessage.sender === me.userId ? 'You: ' : ''}${c.lastMessage.body}` : 'No messages yet'),
      el('span', { class: 'when' }, c.lastMessage ? formatTime(c.lastMessage.timestamp) : '')))));
  tabs.replaceChildren(...[...panes.keys()].map((id) => el('div', { class: 'tab-wrap' },
    el('button', { type: 'button', class: 'tab', id: `tab-${id}`, 'aria-current': active === id ? 'true' : null, 'aria-controls': `pane-${id}`, dataset: { user: id }, onclick: () => open(id) },
      names(id), customers.get(id)?.unread ? el('span', { class: 'badge' }, String(customers.get(id).unread)) : null,
      panes.get(id).conversation.isTyping() ? el('span', { class: 'tab-typing', 'aria-label': 'typing' }, '…') : null),
    el('button', { type: 'button', class: 'close', 'aria-label': `Close ${names(id)}`, onclick: () => close(id) }, '×'))));
}

async function open(clientId) {
  let pane = panes.get(clientId);
  if (!pane) {
    pane = new ChatPane({
      client, token: me.token, me: me.userId, adminId: me.userId, clientId, names,
      isVisible: (p) => active === p.clientId && document.visibilityState === 'visible',
      onChange: () => {
        const c = customers.get(clientId);
        if (c) { c.unread = pane.conversation.unread; c.lastMessage = pane.conversation.last ?? c.lastMessage; }
        renderCustomers();
      },
    });
    pane.root.id = `pane-${clientId}`;
    pane.root.setAttribute('role', 'region');
    pane.root.setAttribute('aria-labelledby', `tab-${clientId}`);
    panes.set(clientId, pane);
    panesRoot.querySelector('.empty')?.remove();
    panesRoot.append(pane.root);
    await pane.refresh().catch((e) => pane.showNotice(`Could not load the conversation: ${e.message}`));
  }
  active = clientId;
  for (const [id, p] of panes) p.root.hidden = id !== clientId;
  pane.markSeenIfVisible();
  renderCustomers();
  pane.input.focus();
}

function close(clientId) {
  const pane = panes.get(clientId);
  if (!pane) return;
  pane.dispose();
  pane.root.remove();
  panes.delete(clientId);
  if (active === clientId) {
    active = null;
    const next = [...panes.keys()][0];
    if (next) open(next); else panesRoot.append(el('p', { class: 'empty' }, 'Pick a customer on the left.'));
  }
  renderCustomers();
}

/** A message of any of my conversations, live or replayed (each counted once: replays repeat what is known). */
function receive(clientId, message) {
  feed?.note(message.id);
  const pane = panes.get(clientId);
  let c = customers.get(clientId);
  if (!c) { c = { userId: clientId, name: clientId, online: true, unread: 0, lastMessage: null }; customers.set(clientId, c); }
  const isNew = !c.lastMessage || compareIds(message.id, c.lastMessage.id) > 0;
  if (isNew) c.lastMessage = message;
  if (pane) pane.onMessage(message);
  // A new customer message raises the unread count even when its conversation is not open or not in front.
  if (message.sender !== me.userId && !(pane && active === clientId && document.visibilityState === 'visible')) {
    c.unread = pane ? pane.conversation.unread : c.unread + (isNew ? 1 : 0);
  }
  renderCustomers();
}

/** A replay cut at the broker's maximum: open conversations page the REST history back to `since`; the list reloads. */
async function fillGap(since) {
  await loadCustomers();
  for (const [clientId, pane] of panes) for (const m of await pane.fillSince(since)) receive(clientId, m);
  for (const c of customers.values()) feed.note(c.lastMessage?.id);
}

let feed = null;                  // where the subscription to all my conversations resumes
/**
 * Every conversation of mine in one subscription, from after the newest message the contact list named. On a
 * reconnect it resumes with `since:` the newest message it handed over: the broker replays what was missed.
 */
function subscribeConversations() {
  feed = new ResumePoint([...customers.values()].map((c) => c.lastMessage?.id).filter(Boolean).sort(compareIds).at(-1));
  let since = feed.since;
  client.subscribe(`/topic/private-chat/${me.userId}/*`, (frame) => {
    if (isTruncatedReplay(frame)) { fillGap(since).catch(() => {}); return; }
    const clientId = frame.headers.destination.split('/').pop();
    receive(clientId, fromFrame(frame, me.userId, clientId));
  }, () => { since = feed.since; return { since }; });
}

client.subscribe(`/topic/typing/${me.userId}`, (frame) => {
  const notice = JSON.parse(frame.body);
  panes.get(notice.from)?.onTyping(notice.typing);
  renderCustomers();
});
client.subscribe(`/topic/seen/${me.userId}`, (frame) => {
  const notice = parseNotice(frame);
  // A delivered notice may not name the reader: it goes to the pane that holds the message.
  const targets = notice.reader ? [panes.get(notice.reader)].filter(Boolean)
    : [...panes.values()].filter((p) => notice.ids.some((id) => p.conversation.byId.has(id)));
  for (const pane of targets) {
    if (notice.status === 'delivered') pane.onDelivered(notice); else pane.onSeen(notice);
  }
});
client.subscribe('/topic/presence', (frame) => {
  const { userId, online } = JSON.parse(frame.body);
  const c = customers.get(userId);
  if (c) { c.online = online; renderCustomers(); }
});

async function loadCustomers() {
  const { contacts } = await api('/api/contacts', me.token);
  for (const c of contacts) {
    const known = customers.get(c.userId);
    customers.set(c.userId, { ...c, unread: panes.has(c.userId) ? panes.get(c.userId).conversation.unread : c.unread, lastMessage: c.lastMessage ?? known?.lastMessage ?? null });
  }
  renderCustomers();
}

client.on('state', (state) => {
  if (state === 'connected') { loadCustomers().catch(() => {}); panes.get(active)?.markSeenIfVisible(); }
});
document.addEventListener('visibilitychange', () => panes.get(active)?.markSeenIfVisible());
setInterval(renderCustomers, 2000);                    // typing marks on tabs expire

// Connect first: the connection retries on its own, and a failed first load (broker restarting) must not stop it.
client.connect().catch((e) => { document.getElementById('banner').textContent = `Could not connect: ${e.message}`; });
await untilLoaded(loadCustomers, document.getElementById('banner'), showStatus);
subscribeConversations();
