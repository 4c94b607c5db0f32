// The customer page: pick an administrator (online ones marked) and chat with it.
import { requireUser, api, connect, bindStatus, el, logout, untilLoaded } from './app.js';
import { fromFrame, isTruncatedReplay, parseNotice, ResumePoint, compareIds } from './chat-model.js';
import { ChatPane } from './chat-pane.js';

const me = requireUser('client');
document.getElementById('me').textContent = me.name;
document.getElementById('logout').addEventListener('click', async () => { await client.disconnect(); logout(); });

const client = connect(me.token);
const showStatus = bindStatus(client, document.getElementById('banner'), document.getElementById('status-pill'));
const admins = new Map();            // id -> { userId, name, online, unread, lastId }
const conversations = new Map();     // adminId -> Map(id -> message): what arrived while another admin was shown
const resume = new Map();            // adminId -> ResumePoint of that conversation's subscription
let pane = null;

const names = (id) => (id === me.userId ? me.name : admins.get(id)?.name ?? id);
const adminList = document.getElementById('admins');

function renderAdmins() {
  adminList.replaceChildren(...[...admins.values()].map((a) => el('li', {},
    el('button', {
      type: 'button', class: 'contact', 'aria-current': pane?.adminId === a.userId ? 'true' : null,
      dataset: { user: a.userId }, onclick: () => choose(a.userId),
    },
    el('span', { class: `dot ${a.online ? 'online' : ''}`, 'aria-hidden': 'true' }),
    el('span', { class: 'name' }, a.name),
    el('span', { class: 'state' }, a.online ? 'online' : 'away'),
    a.unread ? el('span', { class: 'badge', 'aria-label': `${a.unread} unread` }, String(a.unread)) : null))));
}

async function choose(adminId) {
  if (pane?.adminId === adminId) return;
  pane?.dispose();
  const root = document.querySelector('.chat');
  const fresh = root.cloneNode(true);                 // drop the previous pane's listeners
  root.replaceWith(fresh);
  fresh.querySelector('#chat-title').textContent = `Chat with ${names(adminId)}`;
  pane = new ChatPane({
    client, token: me.token, me: me.userId, adminId, clientId: me.userId, names, root: fresh,
    isVisible: (p) => p === pane && document.visibilityState === 'visible',
    onChange: () => { const a = admins.get(adminId); if (a) { a.unread = pane.conversation.unread; renderAdmins(); } },
  });
  for (const m of conversations.get(adminId)?.values() ?? []) pane.conversation.add(m);
  conversations.delete(adminId);
  renderAdmins();
  await pane.refresh().catch((e) => pane.showNotice(`Could not load the conversation: ${e.message}`));
  pane.input.focus();
}

client.subscribe(`/topic/typing/${me.userId}`, (frame) => {
  const notice = JSON.parse(frame.body);
  if (pane && notice.from === pane.adminId) pane.onTyping(notice.typing);
});
client.subscribe(`/topic/seen/${me.userId}`, (frame) => {
  const notice = parseNotice(frame);
  if (!pane || (notice.reader && notice.reader !== pane.adminId)) return;
  if (notice.status === 'delivered') pane.onDelivered(notice);
  else pane.onSeen(notice);
});
client.subscribe('/topic/presence', (frame) => {
  const { userId, online } = JSON.parse(frame.body);
  const a = admins.get(userId);
  if (a) { a.online = online; renderAdmins(); }
});

/** A message of one conversation, live or replayed: to the pane when shown, else kept (once) for later. */
function receive(adminId, message) {
  resume.get(adminId).note(message.id);
  const a = admins.get(adminId);
  const isNew = !a.lastId || compareIds(message.id, a.lastId) > 0;
  if (isNew) a.lastId = message.id;
  if (pane?.adminId === adminId) { pane.onMessage(message); return; }
  if (!conversations.has(adminId)) conversations.set(adminId, new Map());
  conversations.get(adminId).set(message.id, message);
  if (isNew && message.sender !== me.userId) { a.unread++; renderAdmins(); }
}

/** A replay cut at the broker's maximum: the rest comes from the REST history, back to where the replay began. */
async function fillGap(adminId, since) {
  if (pane?.adminId === adminId) {
    for (const m of await pane.fillSince(since)) receive(adminId, m);
    return;
  }
  // A conversation not on screen: what it kept would have a hole; drop it (the pane loads the history when chosen),
  // resume after the newest message the contact list names, and take its unread count from the server.
  conversations.delete(adminId);
  await loadAdmins();
  resume.get(adminId).note(admins.get(adminId)?.lastMessage?.id);
}

async function loadAdmins() {
  const { contacts } = await api('/api/contacts', me.token);
  for (const c of contacts) {
    const known = admins.get(c.userId);
    admins.set(c.userId, { ...c, lastId: [known?.lastId, c.lastMessage?.id].filter(Boolean).sort(compareIds).at(-1) ?? null,
      unread: known && pane?.adminId === c.userId ? pane.conversation.unread : c.unread });
    if (!known) {
      // One subscription per administrator: a message from any of them arrives, even when another is shown. It
      // resumes after the newest message it handed over (or the newest the contact list named): on a reconnect the
      // broker replays what was missed, in order, instead of the page paging history backwards.
      const point = new ResumePoint(c.lastMessage?.id);
      resume.set(c.userId, point);
      let since = point.since;
      client.subscribe(`/topic/private-chat/${c.userId}/${me.userId}`, (frame) => {
        if (isTruncatedReplay(frame)) { fillGap(c.userId, since).catch(() => {}); return; }
        receive(c.userId, fromFrame(frame, c.userId, me.userId));
      }, () => { since = point.since; return { since }; });
    }
  }
  renderAdmins();
}

client.on('state', (state) => { if (state === 'connected') { loadAdmins().catch(() => {}); pane?.markSeenIfVisible(); } });
document.addEventListener('visibilitychange', () => pane?.markSeenIfVisible());

// Connect first: the connection retries on its own, and a failed first load (broker restarting) must not stop it.
client.connect().catch((e) => { document.getElementById('banner').textContent = `Could not connect: ${e.message}`; });
await untilLoaded(loadAdmins, document.getElementById('banner'), showStatus);
const first = [...admins.values()].find((a) => a.online) ?? [...admins.values()][0];
if (first) await choose(first.userId);
