// The administrator page: the customers I have conversations with, each with unread count, last message and online
// state, driven by the live inbox alone (/user/queue/inbox: a snapshot, then a delta per change; after a reconnect it
// resumes with since:, no REST); several conversations open at once in tabs, each with its own typing and seen indicators.
import { requireUser, connect, bindStatus, el, logout } from './app.js';
import { fromFrame, formatTime, isTruncatedReplay, parseNotice, ResumePoint, Inbox } from './chat-model.js';
import { ChatPane } from './chat-pane.js';

const me = requireUser('admin');
document.getElementById('me').textContent = me.name;
document.getElementById('logout').addEventListener('click', async () => { await client.disconnect(); logout(); });

const client = connect(me.token);
bindStatus(client, document.getElementById('banner'), document.getElementById('status-pill'));
const inbox = new Inbox();        // my conversations: peer, last message, unread count, online
const panes = new Map();          // clientId -> ChatPane
let active = null;

const names = (id) => (id === me.userId ? me.name : inbox.byPeer.get(id)?.peerName ?? id);
const customerList = document.getElementById('customers');
const tabs = document.getElementById('tabs');
const panesRoot = document.getElementById('panes');

function renderCustomers() {
  const list = inbox.conversations.map((c) => el('li', {},
    el('button', { type: 'button', class: 'contact', 'aria-current': active === c.peerId ? 'true' : null, dataset: { user: c.peerId }, onclick: () => open(c.peerId) },
      el('span', { class: `dot ${c.online ? 'online' : ''}`, 'aria-label': c.online ? 'online' : 'offline' }),
      el('span', { class: 'name' }, c.peerName),
      c.unread ? el('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null,
      el('span', { class: 'preview' }, `${c.lastSender === me.userId ? 'You: ' : ''}${c.preview}`),
      el('span', { class: 'when' }, formatTime(c.lastMessageAt)))));
  customerList.replaceChildren(...(list.length || !inbox.loaded ? list
    : [el('li', { class: 'none' }, 'No conversations yet: a customer shows up here when they write.')]));
  tabs.replaceChildren(...[...panes.keys()].map((id) => el('div', { class: 'tab-wrap' },
    el('button', { type: 'button', class: 'tab', id: `tab-${id}`, 'aria-current': active === id ? 'true' : null, 'aria-controls': `pane-${id}`, dataset: { user: id }, onclick: () => open(id) },
      names(id), inbox.byPeer.get(id)?.unread ? el('span', { class: 'badge' }, String(inbox.byPeer.get(id).unread)) : null,
      panes.get(id).conversation.isTyping() ? el('span', { class: 'tab-typing', 'aria-label': 'typing' }, '…') : null),
    el('button', { type: 'button', class: 'close', 'aria-label': `Close ${names(id)}`, onclick: () => close(id) }, '×'))));
}

async function open(clientId) {
  let pane = panes.get(clientId);
  if (!pane) {
    pane = new ChatPane({
      client, token: me.token, me: me.userId, adminId: me.userId, clientId, names,
      isVisible: (p) => active === p.clientId && document.visibilityState === 'visible',
      onChange: renderCustomers,                          // the list's counts come from the inbox; the tabs' typing from here
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

/** A message of any of my conversations, live or replayed: to its pane, when open (the list follows the inbox). */
function receive(clientId, message) {
  feed.note(message.id);
  panes.get(clientId)?.onMessage(message);
}

/** A replay cut at the broker's maximum: open conversations page the REST history back to `since`. */
async function fillGap(since) {
  for (const [clientId, pane] of panes) for (const m of await pane.fillSince(since)) receive(clientId, m);
}

let feed = null;                  // where the subscription to all my conversations resumes
/**
 * Every conversation of mine in one subscription (for the open panes), from after the newest message of the first inbox
 * snapshot. On a reconnect it resumes with `since:` the newest message it handed over: the broker replays what was missed.
 */
function subscribeConversations() {
  feed = new ResumePoint(inbox.newestMessageId);
  let since = feed.since;
  client.subscribe(`/topic/private-chat/${me.userId}/*`, (frame) => {
    if (isTruncatedReplay(frame)) { fillGap(since).catch(() => {}); return; }
    const clientId = frame.headers.destination.split('/').pop();
    receive(clientId, fromFrame(frame, me.userId, clientId));
  }, () => { since = feed.since; return { since }; });
}

// The customer list: a snapshot at the first SUBSCRIBE, then one delta per change. After a reconnect the subscription
// asks for what came after the newest inbox id it holds (the broker sends just that, or a new snapshot).
client.subscribe('/user/queue/inbox', (frame) => {
  const { kind, conversation } = inbox.apply(frame);
  if (kind === 'snapshot' && !feed) subscribeConversations();
  if (conversation?.deleted && panes.has(conversation.peerId)) close(conversation.peerId);
  renderCustomers();
}, () => inbox.subscribeHeaders);

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
client.on('state', (state) => { if (state === 'connected') panes.get(active)?.markSeenIfVisible(); });
document.addEventListener('visibilitychange', () => panes.get(active)?.markSeenIfVisible());
setInterval(renderCustomers, 2000);                    // typing marks on tabs expire

// The connection retries on its own; the list fills in with the inbox's first snapshot.
client.connect().catch((e) => { document.getElementById('banner').textContent = `Could not connect: ${e.message}`; });
