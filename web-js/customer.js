// The customer page: pick an administrator (online ones marked) and chat with it.
import { requireUser, api, connect, bindStatus, el, logout, untilLoaded } from './app.js';
import { fromFrame } from './chat-model.js';
import { ChatPane } from './chat-pane.js';

const me = requireUser('client');
document.getElementById('me').textContent = me.name;
document.getElementById('logout').addEventListener('click', async () => { await client.disconnect(); logout(); });

const client = connect(me.token);
const showStatus = bindStatus(client, document.getElementById('banner'), document.getElementById('status-pill'));
const admins = new Map();            // id -> { userId, name, online, unread }
const conversations = new Map();     // adminId -> messages that arrived while another admin was shown
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
  for (const m of conversations.get(adminId) ?? []) pane.conversation.add(m);
  conversations.delete(adminId);
  renderAdmins();
  await pane.refresh().catch((e) => pane.showNotice(`Could not load the conversation: ${e.message}`));
  pane.input.focus();
}

client.subscribe(`/topic/typing/${me.userId}`, (frame) => {
  const notice = JSON.parse(frame.text);
  if (pane && notice.from === pane.adminId) pane.onTyping(notice.typing);
});
client.subscribe(`/topic/seen/${me.userId}`, (frame) => {
  const body = JSON.parse(frame.text);
  if (pane && body.reader === pane.adminId) pane.onSeen({ ids: body.messageIds, reader: body.reader, seenAt: body.seenAt });
});
client.subscribe('/topic/presence', (frame) => {
  const { userId, online } = JSON.parse(frame.text);
  const a = admins.get(userId);
  if (a) { a.online = online; renderAdmins(); }
});

async function loadAdmins() {
  const { contacts } = await api('/api/contacts', me.token);
  for (const c of contacts) {
    const known = admins.get(c.userId);
    admins.set(c.userId, { ...c, unread: known && pane?.adminId === c.userId ? pane.conversation.unread : c.unread });
    if (!known) {
      // One subscription per administrator: a message from any of them arrives, even when another is shown.
      client.subscribe(`/topic/private-chat/${c.userId}/${me.userId}`, (frame) => {
        const message = fromFrame(frame, c.userId, me.userId);
        if (pane?.adminId === c.userId) pane.onMessage(message);
        else {
          if (!conversations.has(c.userId)) conversations.set(c.userId, []);
          conversations.get(c.userId).push(message);
          if (message.sender !== me.userId) { admins.get(c.userId).unread++; renderAdmins(); }
        }
      });
    }
  }
  renderAdmins();
}

client.on('state', (state) => { if (state === 'connected') { loadAdmins().catch(() => {}); pane?.refresh().catch(() => {}); } });
document.addEventListener('visibilitychange', () => pane?.markSeenIfVisible());

// Connect first: the connection retries on its own, and a failed first load (broker restarting) must not stop it.
client.connect().catch((e) => { document.getElementById('banner').textContent = `Could not connect: ${e.message}`; });
await untilLoaded(loadAdmins, document.getElementById('banner'), showStatus);
const first = [...admins.values()].find((a) => a.online) ?? [...admins.values()][0];
if (first) await choose(first.userId);
