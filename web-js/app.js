// Page glue shared by the customer and administrator pages: session token, REST calls, the STOMP connection,
// the connection banner and message rendering.
import { Connection } from './connection.js';
import { decodeToken, formatTime, fromHistory } from './chat-model.js';

const TOKEN_KEY = 'wsbroker.token';
const replaced = new Map();                 // token -> the one a refresh replaced it with (REST calls use the newest)

/** The token from #token=…, window.WSBROKER_TOKEN (a host application) or this tab's login; null when none. */
export function currentToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) { sessionStorage.setItem(TOKEN_KEY, fromHash); history.replaceState(null, '', location.pathname); }
  return fromHash || globalThis.WSBROKER_TOKEN || sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) { sessionStorage.setItem(TOKEN_KEY, token); }

export function logout() { sessionStorage.removeItem(TOKEN_KEY); location.href = 'index.html'; }

/** Who is logged in, or a redirect to the login page. */
export function requireUser(role) {
  const token = currentToken();
  if (!token) { location.href = 'index.html'; throw new Error('not logged in'); }
  const me = decodeToken(token);
  if (me.exp && me.exp * 1000 < Date.now()) { logout(); throw new Error('token expired'); }
  if (role && me.role !== role) { location.href = me.role === 'admin' ? 'admin.html' : 'customer.html'; throw new Error('wrong page'); }
  return { token, ...me };
}

/** The newest token of the chain `token` started: pages keep the token they loaded with, refreshes replace it. */
export function newest(token) {
  while (replaced.has(token)) token = replaced.get(token);
  return token;
}

export async function api(path, token, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers ?? {}), authorization: `Bearer ${newest(token)}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail ?? problem.title ?? detail; } catch { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

/**
 * A new token for the signed-in user, before the current one expires (the connection calls it; docs/design.md §3
 * "Long-lived sessions"). The one function an embedding page replaces: set `window.WSBROKER_REFRESH_TOKEN = async
 * (current) => newJwt` (with `window.WSBROKER_TOKEN` for the first one). Without it (embedded mode), POST /api/dev/token
 * again.
 */
export async function refreshToken(current) {
  if (typeof globalThis.WSBROKER_REFRESH_TOKEN === 'function') return globalThis.WSBROKER_REFRESH_TOKEN(current);
  const response = await fetch('/api/dev/token', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: decodeToken(current).userId }),
  });
  if (!response.ok) throw new Error(`could not refresh the token: ${response.status}`);
  return (await response.json()).token;
}

/** The page's STOMP connection (@stomp/stompjs underneath: reconnects, heart-beats from a Worker in background tabs),
 * refreshing its token before exp; the refreshed token is kept for this tab and for the page's REST calls. */
export function connect(token) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const connection = new Connection({ url, token, refreshToken, heartbeat: [10000, 10000], reconnectDelay: 500, maxReconnectDelay: 8000 });
  let current = token;
  connection.on('token', (fresh) => {
    replaced.set(current, fresh);
    current = fresh;
    saveToken(fresh);
  });
  return connection;
}

/** Shows the connection state in the banner (role=status, so screen readers hear it). */
export function bindStatus(client, banner, pill) {
  const show = (state) => {
    const text = { connecting: 'Connecting…', connected: 'Online', reconnecting: 'Connection lost — reconnecting…', offline: 'Offline' }[state] ?? state;
    pill.textContent = state === 'connected' ? 'Online' : state === 'offline' ? 'Offline' : 'Connecting';
    pill.dataset.state = state;
    banner.hidden = state === 'connected';
    banner.textContent = text;
    banner.dataset.state = state;
  };
  client.on('state', show);
  show(client.state);
  addEventListener('offline', () => { banner.hidden = false; banner.textContent = 'You are offline — messages will be sent when the connection is back.'; });
  addEventListener('online', () => show(client.state));
  return () => show(client.state);
}

/** Runs load() until it succeeds, saying so in the banner between tries (back-off up to 15 s); then restore() puts
 * the banner back to the connection state. */
export async function untilLoaded(load, banner, restore) {
  for (let delay = 1000, failed = false; ; delay = Math.min(delay * 2, 15000), failed = true) {
    try {
      const result = await load();
      if (failed) restore();
      return result;
    } catch (e) {
      banner.hidden = false;
      banner.textContent = `Could not load the contacts (${e.message}) — trying again…`;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** The tick of one of my messages: sending, failed, sent (RECEIPT), delivered (status:delivered), seen (status:seen). */
export function statusOf(m) {
  if (m.status === 'sending') return { state: 'sending', text: 'Sending…' };
  if (m.status === 'failed') return { state: 'failed', text: `Not sent: ${m.error ?? 'rejected'}` };
  if (m.seen) return { state: 'seen', text: `✓✓ Seen ${formatTime(m.seenAt ?? m.timestamp)}` };
  if (m.deliveredAt) return { state: 'delivered', text: '✓✓ Delivered' };
  return { state: 'sent', text: '✓ Sent' };
}

/** Renders a conversation's messages into a list element, keeping the scroll position sensible. */
export function renderMessages(list, conversation, names) {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const previousHeight = list.scrollHeight;
  const previousTop = list.scrollTop;
  const firstBefore = list.firstElementChild?.dataset.id;
  list.replaceChildren(...conversation.messages.map((m) => {
    const mine = m.sender === conversation.me;
    const tick = mine ? statusOf(m) : null;
    return el('li', { class: `message ${mine ? 'mine' : 'theirs'}${m.status === 'failed' ? ' failed' : ''}`, dataset: { id: m.id ?? m.localId } },
      el('div', { class: 'bubble' }, m.body),
      el('div', { class: 'meta' },
        el('span', {}, `${mine ? 'You' : names(m.sender)} · ${formatTime(m.timestamp)}`),
        tick ? el('span', { class: `status${tick.state === 'seen' || tick.state === 'delivered' ? ` ${tick.state}` : ''}`, 'data-status': tick.state }, tick.text) : null));
  }));
  if (firstBefore && list.firstElementChild?.dataset.id !== firstBefore && !nearBottom) {
    list.scrollTop = previousTop + (list.scrollHeight - previousHeight);      // older messages were prepended
  } else if (nearBottom) {
    list.scrollTop = list.scrollHeight;
  }
}

/** One page of a conversation's history, newest first: { messages, nextBefore }. */
export function historyPage(conversation, token, before = null, pageSize = 30) {
  const query = new URLSearchParams({ limit: String(pageSize) });
  if (before) query.set('before', before);
  return api(`/api/conversations/${encodeURIComponent(conversation.adminId)}/${encodeURIComponent(conversation.clientId)}/messages?${query}`, token);
}

/** Loads one page of history (newest first from the API) into a conversation; returns how many arrived. */
export async function loadHistory(conversation, token, pageSize = 30) {
  const page = await historyPage(conversation, token, conversation.oldestId, pageSize);
  conversation.add(...page.messages.map(fromHistory));
  conversation.hasOlder = page.nextBefore !== null;
  return page.messages.length;
}
