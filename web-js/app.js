// Page glue shared by the customer and administrator pages: session token, REST calls, the STOMP connection,
// the connection banner and message rendering.
import { StompClient } from './stomp-client.js';
import { decodeToken, formatTime } from './chat-model.js';

const TOKEN_KEY = 'wsbroker.token';

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

export async function api(path, token, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers ?? {}), authorization: `Bearer ${token}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail ?? problem.title ?? detail; } catch { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

export function connect(token) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  return new StompClient({ url, token, heartbeat: [10000, 10000], reconnectDelay: 500, maxReconnectDelay: 8000, timers: workerTimers() });
}

/**
 * Heart-beat timers that keep time in a background tab. Chrome runs a hidden tab's chained timers only once a minute,
 * which would let the broker drop an administrator's desk left in the background every 20 s; timers inside a Worker
 * are not throttled that way. Falls back to the page's timers where Workers are unavailable.
 */
function workerTimers() {
  if (typeof Worker === 'undefined' || typeof Blob === 'undefined') return undefined;
  try {
    const source = 'const t = new Map(); onmessage = ({ data: [op, id, ms] }) => { '
      + "if (op === 'set') t.set(id, setInterval(() => postMessage(id), ms)); else { clearInterval(t.get(id)); t.delete(id); } };";
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
    const callbacks = new Map();
    let next = 1;
    worker.onmessage = ({ data: id }) => callbacks.get(id)?.();
    return {
      setTimeout: (f, ms) => setTimeout(f, ms),
      clearTimeout: (handle) => clearTimeout(handle),
      setInterval: (f, ms) => { const id = next++; callbacks.set(id, f); worker.postMessage(['set', id, ms]); return id; },
      clearInterval: (id) => { callbacks.delete(id); worker.postMessage(['clear', id]); },
    };
  } catch {
    return undefined;                                   // e.g. a Content-Security-Policy without blob: workers
  }
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

/** Renders a conversation's messages into a list element, keeping the scroll position sensible. */
export function renderMessages(list, conversation, names) {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const previousHeight = list.scrollHeight;
  const previousTop = list.scrollTop;
  const firstBefore = list.firstElementChild?.dataset.id;
  list.replaceChildren(...conversation.messages.map((m) => {
    const mine = m.sender === conversation.me;
    let status = '';
    if (mine) {
      status = m.status === 'sending' ? 'Sending…' : m.status === 'failed' ? `Not sent: ${m.error ?? 'rejected'}`
        : m.seen ? `✓✓ Seen ${formatTime(m.seenAt ?? m.timestamp)}` : '✓ Sent';
    }
    return el('li', { class: `message ${mine ? 'mine' : 'theirs'}${m.status === 'failed' ? ' failed' : ''}`, dataset: { id: m.id ?? m.localId } },
      el('div', { class: 'bubble' }, m.body),
      el('div', { class: 'meta' },
        el('span', {}, `${mine ? 'You' : names(m.sender)} · ${formatTime(m.timestamp)}`),
        mine ? el('span', { class: `status${m.seen ? ' seen' : ''}`, 'data-status': m.seen ? 'seen' : m.status }, status) : null));
  }));
  if (firstBefore && list.firstElementChild?.dataset.id !== firstBefore && !nearBottom) {
    list.scrollTop = previousTop + (list.scrollHeight - previousHeight);      // older messages were prepended
  } else if (nearBottom) {
    list.scrollTop = list.scrollHeight;
  }
}

/** Loads one page of history (newest first from the API) into a conversation; returns how many arrived. */
export async function loadHistory(conversation, token, pageSize = 30) {
  const before = conversation.oldestId;
  const query = new URLSearchParams({ limit: String(pageSize) });
  if (before) query.set('before', before);
  const page = await api(`/api/conversations/${encodeURIComponent(conversation.adminId)}/${encodeURIComponent(conversation.clientId)}/messages?${query}`, token);
  conversation.add(...page.messages.map((m) => ({ ...m, status: 'sent' })));
  conversation.hasOlder = page.nextBefore !== null;
  return page.messages.length;
}
