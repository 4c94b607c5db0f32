// One conversation on screen: messages, typing line, composer, older history on scroll, read receipts.
import { Conversation, TypingThrottle, fromHistory, historySince } from './chat-model.js';
import { el, renderMessages, loadHistory, historyPage } from './app.js';

export class ChatPane {
  /**
   * @param {object} o
   * @param {import('./connection.js').Connection} o.client
   * @param {string} o.token  @param {string} o.me  @param {string} o.adminId  @param {string} o.clientId
   * @param {(id: string) => string} o.names   display names
   * @param {(pane: ChatPane) => boolean} o.isVisible  whether the user is looking at this pane now
   * @param {() => void} [o.onChange]
   * @param {HTMLElement} [o.root]  existing elements to use (customer page) or null to build them (admin page)
   */
  constructor(o) {
    Object.assign(this, o);
    this.conversation = new Conversation(o.adminId, o.clientId, o.me);
    this.loading = false;
    this.root = o.root ?? this.#build();
    this.list = this.root.querySelector('.messages');
    this.typingLine = this.root.querySelector('.typing');
    this.notice = this.root.querySelector('.notice');
    this.input = this.root.querySelector('textarea');
    this.sendButton = this.root.querySelector('button[type=submit]');
    const other = this.conversation.other;
    this.throttle = new TypingThrottle((typing) => this.client
      .send(`/topic/typing/${other}`, JSON.stringify({ conversation: `${o.adminId}/${o.clientId}`, typing }), { 'content-type': 'application/json' }, { resend: false })
      .catch(() => { /* typing is best effort */ }));
    this.root.querySelector('form').addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
    });
    this.input.addEventListener('input', () => { if (this.input.value.trim()) this.throttle.keystroke(); else this.throttle.stop(); });
    this.input.addEventListener('blur', () => this.throttle.stop());
    this.list.addEventListener('scroll', () => { if (this.list.scrollTop < 40) this.loadOlder(); });
    this.input.disabled = false;
    this.sendButton.disabled = false;
    this.typingTimer = setInterval(() => this.#renderTyping(), 1000);
  }

  #build() {
    return el('article', { class: 'chat pane', 'aria-label': `Conversation with ${this.names(this.clientId)}` },
      el('header', { class: 'chat-head' },
        el('h2', {}, this.names(this.clientId)),
        el('p', { class: 'typing', 'aria-live': 'polite' })),
      el('ol', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages' }),
      el('p', { class: 'notice', role: 'alert', hidden: true }),
      el('form', { class: 'composer' },
        el('label', { class: 'visually-hidden', for: `input-${this.clientId}` }, 'Your answer'),
        el('textarea', { id: `input-${this.clientId}`, rows: 1, placeholder: 'Type an answer — Enter sends' }),
        el('button', { type: 'submit', class: 'primary' }, 'Send')));
  }

  /**
   * The newest page of history, when the pane opens. After a reconnect nothing is paged here: the page's subscription
   * resumes with `since:` and the broker replays what was missed.
   */
  async refresh() {
    const fresh = new Conversation(this.adminId, this.clientId, this.me);
    await loadHistory(fresh, this.token);
    this.conversation.add(...fresh.messages);
    this.conversation.hasOlder = this.conversation.hasOlder && fresh.hasOlder;
    this.render();
    this.markSeenIfVisible();
  }

  /** What a replay cut at the broker's maximum left out: pages the REST history back to `since`. */
  async fillSince(since) {
    const missed = (await historySince((before) => historyPage(this.conversation, this.token, before, 100), since)).map(fromHistory);
    if (this.conversation.add(...missed)) { this.render(); this.markSeenIfVisible(); this.onChange?.(); }
    return missed;
  }

  async loadOlder() {
    if (this.loading || !this.conversation.hasOlder || !this.conversation.oldestId) return;
    this.loading = true;
    try { await loadHistory(this.conversation, this.token); this.render(); } catch (e) { this.showNotice(`Could not load older messages: ${e.message}`); }
    finally { this.loading = false; }
  }

  onMessage(message) {
    if (this.conversation.add(message)) {
      if (message.sender !== this.me) this.conversation.setTyping(false);
      this.render();
      this.markSeenIfVisible();
      this.onChange?.();
    }
  }

  onTyping(typing) { this.conversation.setTyping(typing); this.#renderTyping(); }

  onSeen(notice) { this.conversation.markSeen(notice); this.render(); }

  onDelivered(notice) { this.conversation.markDelivered(notice); this.render(); }

  /** Tells the other side we read everything up to the newest message to us. */
  markSeenIfVisible() {
    const upTo = this.conversation.newestUnreadId;
    if (!upTo || upTo === this.seenInFlight || !this.isVisible(this) || !this.client.isConnected) return;
    // Marked seen here only once the broker has stored it: a receipt lost to a dropped connection is sent again on
    // the next view or after the reconnect, instead of leaving the other side without its "seen".
    this.seenInFlight = upTo;
    this.client.send(`/topic/seen/${this.conversation.other}`, '', { 'up-to': upTo }, { resend: false })
      .then(() => {
        this.conversation.markSeen({ upTo, reader: this.me, seenAt: Date.now() });
        this.render();
        this.onChange?.();
      })
      .catch(() => { /* not stored: offered again on the next view or reconnect */ })
      .finally(() => { if (this.seenInFlight === upTo) this.seenInFlight = null; });
  }

  async submit() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = '';
    this.throttle.stop();
    const local = this.conversation.addLocal(body);
    this.render();
    try {
      // The same client-msg-id goes with every resend after a reconnect: the broker stores it once and answers a
      // repeat with the original RECEIPT and message-id.
      const receipt = await this.client.send(this.conversation.destination, body,
        { 'content-type': 'text/plain;charset=utf-8', 'client-msg-id': local.clientMsgId });
      this.conversation.confirm(local, receipt.headers['message-id']);
      this.onChange?.();
      this.hideNotice();
    } catch (e) {
      local.status = 'failed';
      local.error = e.message.replace(/^could-not-send-message: /, '');
      const echoed = local.echoId ? this.conversation.byId.get(local.echoId) : null;
      if (echoed) Object.assign(echoed, { status: 'failed', error: local.error });          // delivered, then not stored
      else if (!this.conversation.local.includes(local)) this.conversation.local.push(local);
      this.showNotice(`Your message was not delivered: ${local.error}`);
    }
    this.render();
  }

  render() {
    renderMessages(this.list, this.conversation, this.names);
    this.#renderTyping();
    // No scroll bar, no scroll event: keep loading older pages while the list does not fill its box.
    if (this.conversation.hasOlder && this.list.clientHeight > 0 && this.list.scrollHeight <= this.list.clientHeight) {
      queueMicrotask(() => this.loadOlder());
    }
  }

  #renderTyping() {
    const typing = this.conversation.isTyping();
    this.typingLine.textContent = typing ? `${this.names(this.conversation.other)} is typing…` : '';
    this.typingLine.dataset.typing = typing ? 'yes' : 'no';
  }

  showNotice(text) { this.notice.textContent = text; this.notice.hidden = false; }
  hideNotice() { this.notice.hidden = true; }

  dispose() { clearInterval(this.typingTimer); }
}
