// floor: what this machine's kernel alone costs for the traffic of issue 17's targets, with no broker and no WebSocket
// or STOMP in the way. A one-thread epoll server and a one-thread epoll client over loopback TCP, both as cheap as a
// process can be: the server's CPU while 19,000 idle connections beat every 10 s, the connect rate for three request and
// reply round trips per connection (the upgrade, CONNECT and SUBSCRIBE with RECEIPT), and the time for one message to
// reach all 19,000. What WsBroker measures on the same machine cannot beat these. Run by load/floor.sh.
//
//   floor server <port> <beat-ms>
//   floor client <port> <connections> idle|fanout|connect <seconds> <sources> <beat-ms>
//   floor stomp <port> <connections> idle|connect|fanout <seconds> <sources> <token>
//   floor syscall
//
// `syscall` prints what one system call that does nothing (getppid) costs here: every beat costs a few of them, and on
// a VM with the kernel's page-table isolation on (/sys/devices/system/cpu/vulnerabilities/meltdown) it is about 1 µs.
//
// `stomp` is the same client speaking the real protocol to a WsBroker on <port>: the HTTP/1.1 upgrade to /ws (subprotocol
// v12.stomp), masked WebSocket frames, CONNECT with the bearer <token> and heart-beat 10000,10000 (0,10000 for fanout,
// which sends no beats), SUBSCRIBE with a
// RECEIPT; `idle` then holds them for <seconds>, each sending a heart-beat every 10 s (spread over the interval) and
// reading the broker's; `fanout` has connection 0 SEND a 128-byte body stamped with the time twice a second for <seconds>
// to /topic/load.fanout, which every connection subscribed to. It measures the broker with a client that costs next to
// nothing, so that the other core is the broker's too.
//
// Client messages end with '\n': "\n" alone is a heart-beat; "R<n> ..." asks for a reply of n bytes; "B<timestamp> ..."
// asks the server to send a 150-byte "M<timestamp> ..." to every connection. Loopback only; every loop is bounded.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 70000
#define MSG 150

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// ---- server --------------------------------------------------------------------------------------------------------

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

static int server(int port, int beat_ms)
{
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(ls, 4096) < 0) die("listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static int conns[MAXFD];
    static long long next_beat[MAXFD];
    int n = 0;
    long long beats = 0, refused = 0, broadcasts = 0;
    long long next_tick = now_us() + 1000000;                   // WsBroker's scanner ticks every second at 10 s beats
    static char buf[65536], reply[4096], msg[MSG];
    memset(reply, 'r', sizeof reply);
    struct epoll_event events[1024];
    while (!stopping)
    {
        int ready = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < ready; i++)
        {
            int fd = events[i].data.fd;
            if (fd == ls)
            {
                for (int k = 0; k < 256; k++)
                {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) { if (errno == EMFILE || errno == ENFILE) refused++; break; }
                    if (c >= MAXFD) { close(c); refused++; continue; }
                    nodelay(c);
                    struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    conns[n++] = c;
                    next_beat[c] = beat_ms > 0 ? now_us() + beat_ms * 1000LL : 0;
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got <= 0)
            {
                if (got < 0 && errno == EAGAIN) continue;
                close(fd);
                for (int k = 0; k < n; k++) if (conns[k] == fd) { conns[k] = conns[--n]; break; }
                continue;
            }
            // Whole messages: each arrives in one segment over loopback (the client sends each in one call).
            for (ssize_t p = 0; p < got;)
            {
                char *end = memchr(buf + p, '\n', got - p);
                if (end == NULL) break;
                char *m = buf + p;
                if (m[0] == 'R')
                {
                    int len = atoi(m + 1);
                    if (len > (int)sizeof reply) len = sizeof reply;
                    reply[len - 1] = '\n';
                    send(fd, reply, len, 0);
                    reply[len - 1] = 'r';
                }
                else if (m[0] == 'B')
                {
                    memset(msg, 'm', MSG);
                    memcpy(msg, m, 17);                          // 'B' and 16 hex digits of the timestamp
                    msg[0] = 'M';
                    msg[MSG - 1] = '\n';
                    for (int k = 0; k < n; k++) send(conns[k], msg, MSG, 0);
                    broadcasts++;
                }
                p = end - buf + 1;
            }
        }
        long long now = now_us();
        if (beat_ms > 0 && now >= next_tick)
        {
            for (int k = 0; k < n; k++)
            {
                int c = conns[k];
                if (next_beat[c] <= now) { send(c, "\n", 1, 0); beats++; next_beat[c] = now + beat_ms * 1000LL; }
            }
            next_tick = now + 1000000;
        }
    }
    fprintf(stderr, "floor server: %lld beats sent, %lld broadcasts, %lld refused\n", beats, broadcasts, refused);
    return 0;
}

// ---- client --------------------------------------------------------------------------------------------------------

struct conn
{
    int fd;
    int step;                                                   // 0 connecting, 1..3 waiting for reply k, 4 connected
    int have;                                                   // bytes of the reply or message assembled so far
    long long next_beat;
    char part[MSG];
};

// Connection k to 127.0.0.1:port from source address 127.0.0.(2 + k % sources), non-blocking, its connect under way and
// watched for EPOLLOUT with k as its data.
static int open_connection(int ep, int port, int k, int sources)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    // As the load tool does: the port is chosen at connect for the whole four-tuple, not reserved at bind.
    int one = 1;
    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + k % sources) };
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind source");
    nodelay(fd);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    connect(fd, (struct sockaddr *)&a, sizeof a);
    struct epoll_event ce = { .events = EPOLLOUT, .data.u32 = k };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
    return fd;
}

static struct conn *cs;
static const int request_len[3] = { 200, 300, 100 };            // the upgrade, CONNECT, SUBSCRIBE with receipt
static const int reply_len[3] = { 129, 80, 40 };                // 101 Switching Protocols, CONNECTED, RECEIPT

static void send_request(struct conn *c)
{
    char r[512];
    int len = request_len[c->step - 1];
    memset(r, 'q', len);
    int head = snprintf(r, sizeof r, "R%d ", reply_len[c->step - 1]);
    r[head] = 'q';
    r[len - 1] = '\n';
    send(c->fd, r, len, 0);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

// Connection k's connect has finished: 0 when it succeeded (it is then watched for EPOLLIN), else its error.
static int connect_result(int ep, int fd, int k)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return err;
    struct epoll_event ce = { .events = EPOLLIN, .data.u32 = k };
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
    return 0;
}

// p50, p99 and max of the `count` latencies in `lat` (at most `cap` kept; sorted here), and how many of the expected
// arrived; 0 when all did.
static int report_fanout(long long broadcasts, long long expected, long long *lat, long long count, long long cap)
{
    if (count > cap) count = cap;
    long long delivered = count;
    qsort(lat, count, sizeof *lat, cmp_ll);
    double p50 = count ? lat[count / 2] / 1000.0 : 0, p99 = count ? lat[count * 99 / 100] / 1000.0 : 0;
    double max = count ? lat[count - 1] / 1000.0 : 0;
    printf("broadcasts=%lld delivered=%lld expected=%lld p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", broadcasts, delivered, expected, p50, p99, max);
    return delivered != expected;
}

static int client(int port, int total, const char *mode, int seconds, int sources, int beat_ms)
{
    signal(SIGPIPE, SIG_IGN);
    cs = calloc(total, sizeof *cs);
    int ep = epoll_create1(0);
    int started = 0, connected = 0, failed = 0, in_flight = 0;
    const int concurrency = 128;
    long long t0 = now_us();
    struct epoll_event events[1024];
    static char buf[65536];
    long long deadline = t0 + 120 * 1000000LL;
    // Connect phase: at most 128 in flight, each through its three round trips.
    while (connected + failed < total && now_us() < deadline)
    {
        while (in_flight < concurrency && started < total)
        {
            cs[started].fd = open_connection(ep, port, started, sources);
            started++;
            in_flight++;
        }
        int ready = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < ready; i++)
        {
            struct conn *c = &cs[events[i].data.u32];
            if (c->step == 0)
            {
                if (connect_result(ep, c->fd, events[i].data.u32)) { failed++; in_flight--; close(c->fd); c->fd = -1; continue; }
                c->step = 1;
                send_request(c);
                continue;
            }
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (c->step == 4)                                   // connected: the server's beats while others connect
            {
                if (got == 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; connected--; failed++; }
                continue;
            }
            if (got <= 0) { if (got < 0 && errno == EAGAIN) continue; failed++; in_flight--; close(c->fd); c->fd = -1; continue; }
            c->have += got;
            if (c->have < reply_len[c->step - 1]) continue;
            c->have = 0;
            if (++c->step == 4) { connected++; in_flight--; }
            else send_request(c);
        }
    }
    double connect_s = (now_us() - t0) / 1e6;
    printf("connected=%d failed=%d connect_seconds=%.3f connect_per_second=%.1f\n", connected, failed, connect_s, connected / connect_s);
    fflush(stdout);
    if (strcmp(mode, "connect") == 0) return failed > 0;

    long long start = now_us(), end = start + seconds * 1000000LL;
    for (int k = 0; k < total; k++) cs[k].next_beat = beat_ms > 0 ? start + (long long)beat_ms * 1000 * k / total : 0;
    int fanout = strcmp(mode, "fanout") == 0;
    long long lat_cap = fanout ? (long long)total * (seconds * 2 + 2) : 0;
    long long *lat = fanout ? malloc(sizeof(long long) * (size_t)lat_cap) : NULL;
    long long got_msgs = 0, sent_b = 0, beats_in = 0, beats_out = 0, next_b = start + 500000;
    int next_beat_scan = 0;
    while (now_us() < end + (fanout ? 2000000 : 0))
    {
        long long now = now_us();
        if (fanout && now >= next_b && now < end)
        {
            char b[64];
            int len = snprintf(b, sizeof b, "B%016llx\n", now);
            send(cs[0].fd, b, len, 0);
            sent_b++;
            next_b += 500000;
        }
        if (beat_ms > 0 && now < end)                           // the client's beats, spread over the interval
        {
            for (int scanned = 0; scanned < total; scanned++)
            {
                struct conn *c = &cs[next_beat_scan];
                if (c->fd >= 0 && c->next_beat > now) break;    // the rest are due later (they go round in order)
                next_beat_scan = (next_beat_scan + 1) % total;
                if (c->fd < 0) continue;
                send(c->fd, "\n", 1, 0);
                beats_out++;
                c->next_beat += beat_ms * 1000LL;
            }
        }
        int ready = epoll_wait(ep, events, 1024, 5);
        for (int i = 0; i < ready; i++)
        {
            struct conn *c = &cs[events[i].data.u32];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got == 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; continue; }
            if (got < 0) continue;
            long long at = now_us();
            for (ssize_t p = 0; p < got; p++)
            {
                if (c->have == 0 && buf[p] == '\n') { beats_in++; continue; }
                c->part[c->have++] = buf[p];
                if (c->have < MSG) continue;
                c->have = 0;
                long long ts = strtoll(c->part + 1, NULL, 16);
                if (lat && got_msgs < lat_cap) lat[got_msgs] = at - ts;
                got_msgs++;
            }
        }
    }
    if (fanout)
    {
        report_fanout(sent_b, sent_b * total, lat, got_msgs, lat_cap);
    }
    else
    {
        int held = 0;
        for (int k = 0; k < total; k++) held += cs[k].fd >= 0;
        printf("held=%d beats_sent=%lld beats_received=%lld\n", held, beats_out, beats_in);
    }
    // The script reads the server's CPU when this line is out: wait before the sockets close, so that the server's
    // teardown of 19,000 connections is not in the idle figure.
    fflush(stdout);
    sleep(2);
    return 0;
}

// ---- stomp: the same client, speaking WebSocket and STOMP to WsBroker -----------------------------------------------

#define FRAME_MAX 4096

struct sconn
{
    int fd;
    int step;                                                   // 0 connecting, 1 upgrade sent, 2 CONNECT sent, 3 SUBSCRIBE sent, 4 ready
    int have;                                                   // bytes in buf
    long long next_beat;                                        // idle: when this connection's next heart-beat is due
    char buf[FRAME_MAX];
};

static struct sconn *ss_;
static const unsigned char mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };
static long long s_failed_first;                                // print the first failure only

// One masked client frame (text, FIN) around payload.
static int ws_frame(char *out, const char *payload, int len)
{
    int h = 0;
    out[h++] = (char)0x81;
    if (len < 126) out[h++] = (char)(0x80 | len);
    else { out[h++] = (char)(0x80 | 126); out[h++] = (char)(len >> 8); out[h++] = (char)(len & 0xff); }
    memcpy(out + h, mask_key, 4);
    h += 4;
    for (int i = 0; i < len; i++) out[h + i] = payload[i] ^ mask_key[i & 3];
    return h + len;
}

static void s_send_frame(int fd, const char *stomp, int len)
{
    char out[FRAME_MAX + 16];
    int n = ws_frame(out, stomp, len);
    send(fd, out, n, 0);
}

static void s_fail(struct sconn *c, const char *why, const char *data, int len)
{
    if (s_failed_first++ == 0) fprintf(stderr, "first failure (step %d): %s: %.*s\n", c->step, why, len > 200 ? 200 : len, data);
}

// The next whole server frame in c->buf (servers do not mask): its payload and length; 0 when not whole yet; -1 bad.
static int ws_next(struct sconn *c, char **payload, int *len, int *used)
{
    if (c->have < 2) return 0;
    unsigned char *b = (unsigned char *)c->buf;
    if (b[1] & 0x80) return -1;
    long long n = b[1] & 0x7f;
    int h = 2;
    if (n == 126) { if (c->have < 4) return 0; n = (b[2] << 8) | b[3]; h = 4; }
    else if (n == 127) return -1;                               // never this large here
    if (h + n > FRAME_MAX) return -1;
    if (c->have < h + n) return 0;
    *payload = c->buf + h;
    *len = (int)n;
    *used = h + (int)n;
    return 1;
}

static void s_consume(struct sconn *c, int used)
{
    memmove(c->buf, c->buf + used, c->have - used);
    c->have -= used;
}

// idle: every connection sends a heart-beat (a masked "\n" frame) every 10 s, spread over the interval as a browser's
// would be, and reads the broker's beats, for <seconds>. Prints what it held, then waits 2 s before the sockets close
// (load/floor.sh reads the broker's CPU when that line is out: the teardown is not in the idle figure).
static int stomp_idle(int ep, int total, int seconds)
{
    static const char beat[] = { (char)0x81, (char)0x81, 0x37, (char)0xfa, 0x21, 0x3d, '\n' ^ 0x37 };
    const long long interval = 10000000LL;
    struct epoll_event events[1024];
    long long start = now_us(), end = start + seconds * 1000000LL, beats_out = 0, beats_in = 0, other = 0;
    for (int k = 0; k < total; k++) ss_[k].next_beat = start + interval * k / total;
    int next_scan = 0, closed = 0, bad = 0;
    while (now_us() < end)
    {
        long long now = now_us();
        for (int scanned = 0; scanned < total; scanned++)      // they go round in order: stop at the first not yet due
        {
            struct sconn *c = &ss_[next_scan];
            if (c->fd >= 0 && c->next_beat > now) break;
            next_scan = (next_scan + 1) % total;
            if (c->fd < 0) continue;
            send(c->fd, beat, sizeof beat, 0);
            beats_out++;
            c->next_beat += interval;
        }
        int ready = epoll_wait(ep, events, 1024, 5);
        for (int i = 0; i < ready; i++)
        {
            struct sconn *c = &ss_[events[i].data.u32];
            if (c->fd < 0) continue;
            ssize_t got = recv(c->fd, c->buf + c->have, FRAME_MAX - c->have, 0);
            if (got < 0) continue;
            if (got == 0) { closed++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; continue; }
            c->have += got;
            char *payload; int len, used, r;
            while ((r = ws_next(c, &payload, &len, &used)) == 1)
            {
                if (len == 1 && payload[0] == '\n') beats_in++;
                else if (other++ == 0) s_fail(c, "unexpected frame while idle", payload, len);
                s_consume(c, used);
            }
            if (r < 0) { s_fail(c, "bad frame", c->buf, c->have); c->have = 0; bad++; }
        }
    }
    int held = 0;
    for (int k = 0; k < total; k++) held += ss_[k].fd >= 0;
    printf("held=%d closed=%d beats_sent=%lld beats_received=%lld other_frames=%lld bad_frames=%d\n", held, closed, beats_out, beats_in, other, bad);
    fflush(stdout);
    sleep(2);
    return closed > 0 || other > 0 || bad > 0;
}

static int stomp_client(int port, int total, const char *mode, int seconds, int sources, const char *token)
{
    signal(SIGPIPE, SIG_IGN);
    ss_ = calloc(total, sizeof *ss_);
    int fanout = strcmp(mode, "fanout") == 0;
    char upgrade[512], connect_frame[2048], subscribe[256];
    int upgrade_len = snprintf(upgrade, sizeof upgrade,
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n", port);
    // connect asks for heart-beats both ways, as the load tool does; fanout sends none of its own (it could not keep the
    // promise while it reads), so it asks the broker for beats only.
    int connect_len = snprintf(connect_frame, sizeof connect_frame,
        "CONNECT\naccept-version:1.2\nhost:127.0.0.1\nheart-beat:%s\nAuthorization:Bearer %s\n\n", fanout ? "0,10000" : "10000,10000", token) + 1;
    int ep = epoll_create1(0);
    int started = 0, connected = 0, failed = 0, in_flight = 0;
    const int concurrency = 128;
    long long t0 = now_us();
    struct epoll_event events[1024];
    long long deadline = t0 + 120 * 1000000LL;
    while (connected + failed < total && now_us() < deadline)
    {
        while (in_flight < concurrency && started < total)
        {
            ss_[started].fd = open_connection(ep, port, started, sources);
            started++;
            in_flight++;
        }
        int ready = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < ready; i++)
        {
            int k = events[i].data.u32;
            struct sconn *c = &ss_[k];
            if (c->fd < 0) continue;
            if (c->step == 0)
            {
                int err = connect_result(ep, c->fd, k);
                if (err) { s_fail(c, "connect", strerror(err), (int)strlen(strerror(err))); failed++; in_flight--; close(c->fd); c->fd = -1; continue; }
                c->step = 1;
                send(c->fd, upgrade, upgrade_len, 0);
                continue;
            }
            ssize_t got = recv(c->fd, c->buf + c->have, FRAME_MAX - c->have, 0);
            if (got < 0 && errno == EAGAIN) continue;
            if (got <= 0)
            {
                s_fail(c, "closed", "", 0);
                if (c->step == 4) connected--; else in_flight--;
                failed++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; continue;
            }
            c->have += got;
            int bad = 0;
            while (!bad && c->step < 4)
            {
                if (c->step == 1)
                {
                    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
                    if (!end) break;
                    if (c->have < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) { s_fail(c, "upgrade refused", c->buf, c->have); bad = 1; break; }
                    s_consume(c, (int)(end + 4 - c->buf));
                    c->step = 2;
                    s_send_frame(c->fd, connect_frame, connect_len);
                    continue;
                }
                char *payload; int len, used;
                int r = ws_next(c, &payload, &len, &used);
                if (r == 0) break;
                if (r < 0) { s_fail(c, "bad frame", c->buf, c->have); bad = 1; break; }
                const char *want = c->step == 2 ? "CONNECTED\n" : "RECEIPT\n";
                if (len == 1 && payload[0] == '\n') { s_consume(c, used); continue; }     // a heart-beat
                if (len < (int)strlen(want) || memcmp(payload, want, strlen(want)) != 0) { s_fail(c, "unexpected frame", payload, len); bad = 1; break; }
                s_consume(c, used);
                if (c->step == 2)
                {
                    int n = fanout ? snprintf(subscribe, sizeof subscribe, "SUBSCRIBE\nid:f\ndestination:/topic/load.fanout\nreceipt:r\n\n")
                                   : snprintf(subscribe, sizeof subscribe, "SUBSCRIBE\nid:i\ndestination:/topic/load.idle%d\nreceipt:r\n\n", k);
                    s_send_frame(c->fd, subscribe, n + 1);
                    c->step = 3;
                }
                else { c->step = 4; connected++; in_flight--; }
            }
            if (bad) { failed++; in_flight--; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; }
        }
    }
    double connect_s = (now_us() - t0) / 1e6;
    printf("connected=%d failed=%d connect_seconds=%.3f connect_per_second=%.1f\n", connected, failed, connect_s, connected / connect_s);
    fflush(stdout);
    if (strcmp(mode, "idle") == 0) return stomp_idle(ep, total, seconds) || failed > 0;
    if (!fanout) return failed > 0;
    if (ss_[0].fd < 0) { fprintf(stderr, "the publisher's connection failed\n"); return 1; }

    // fanout: connection 0 publishes; every connection's MESSAGE body starts with 'T' and 16 hex digits of now_us().
    long long start = now_us(), end = start + seconds * 1000000LL, next_b = start + 500000;
    long long lat_cap = (long long)total * (seconds * 2 + 2), got_msgs = 0, sent_b = 0;
    long long *lat = malloc(sizeof(long long) * (size_t)lat_cap);
    while (now_us() < end + 2000000)
    {
        long long now = now_us();
        if (now >= next_b && now < end)
        {
            char send_frame[512];
            int n = snprintf(send_frame, sizeof send_frame, "SEND\ndestination:/topic/load.fanout\ncontent-type:text/plain\n\nT%016llx", now);
            memset(send_frame + n, 'x', 128 - 17);
            n += 128 - 17;
            send_frame[n++] = 0;
            s_send_frame(ss_[0].fd, send_frame, n);
            sent_b++;
            next_b += 500000;
        }
        int ready = epoll_wait(ep, events, 1024, 5);
        for (int i = 0; i < ready; i++)
        {
            struct sconn *c = &ss_[events[i].data.u32];
            if (c->fd < 0) continue;
            ssize_t got = recv(c->fd, c->buf + c->have, FRAME_MAX - c->have, 0);
            if (got == 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; continue; }
            if (got < 0) continue;
            long long at = now_us();
            c->have += got;
            char *payload; int len, used;
            int r;
            while ((r = ws_next(c, &payload, &len, &used)) == 1)
            {
                // One WebSocket message may carry several STOMP frames (the broker batches what is queued), each ending
                // in NUL, with heart-beat EOLs between them.
                char *frame = payload, *end_of_payload = payload + len;
                while (frame < end_of_payload)
                {
                    char *nul = memchr(frame, 0, end_of_payload - frame);
                    if (!nul) break;
                    while (frame < nul && (*frame == '\n' || *frame == '\r')) frame++;
                    char *body = memmem(frame, nul - frame, "\n\nT", 3);
                    if (nul - frame > 8 && memcmp(frame, "MESSAGE\n", 8) == 0 && body && body + 19 <= nul)
                    {
                        char hex[17];
                        memcpy(hex, body + 3, 16);
                        hex[16] = 0;
                        if (got_msgs < lat_cap) lat[got_msgs] = at - strtoll(hex, NULL, 16);
                        got_msgs++;
                    }
                    frame = nul + 1;
                }
                s_consume(c, used);
            }
            if (r < 0) { s_fail(c, "bad frame", c->buf, c->have); c->have = 0; }
        }
    }
    return report_fanout(sent_b, sent_b * total, lat, got_msgs, lat_cap);
}

// The mean of a million getppid calls, made through syscall() so that no library caches the answer.
static int syscall_cost(void)
{
    const int calls = 1000000;
    struct timespec from, to;
    clock_gettime(CLOCK_MONOTONIC, &from);
    for (int i = 0; i < calls; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &to);
    printf("syscall_ns=%.0f\n", ((to.tv_sec - from.tv_sec) * 1e9 + (to.tv_nsec - from.tv_nsec)) / calls);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "syscall") == 0) return syscall_cost();
    if (argc == 4 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), atoi(argv[3]));
    if (argc == 8 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), atoi(argv[3]), argv[4], atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
    if (argc == 8 && strcmp(argv[1], "stomp") == 0)
        return stomp_client(atoi(argv[2]), atoi(argv[3]), argv[4], atoi(argv[5]), atoi(argv[6]), argv[7]);
    fprintf(stderr, "usage: floor server <port> <beat-ms>\n       floor client <port> <connections> idle|fanout|connect <seconds> <sources> <beat-ms>\n"
        "       floor stomp <port> <connections> idle|connect|fanout <seconds> <sources> <token>\n       floor syscall\n");
    return 2;
}
