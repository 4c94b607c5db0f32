// floor: what this machine's kernel alone costs for the traffic of issue 17's targets, with no broker and no WebSocket
// or STOMP in the way. A one-thread epoll server and a one-thread epoll client over loopback TCP, both as cheap as a
// process can be: the server's CPU while 19,000 idle connections beat every 10 s, the connect rate for three request and
// reply round trips per connection (the upgrade, CONNECT and SUBSCRIBE with RECEIPT), and the time for one message to
// reach all 19,000. What WsBroker measures on the same machine cannot beat these. Run by load/floor.sh.
//
//   floor server <port> <beat-ms>
//   floor client <port> <connections> idle|fanout|connect <seconds> <sources> <beat-ms>
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
            struct conn *c = &cs[started];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0) die("socket");
            // As the load tool does: the port is chosen at connect for the whole four-tuple, not reserved at bind.
            int one = 1;
            setsockopt(c->fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + started % sources) };
            if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind source");
            nodelay(c->fd);
            struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
            connect(c->fd, (struct sockaddr *)&a, sizeof a);
            struct epoll_event ce = { .events = EPOLLOUT, .data.u32 = started };
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ce);
            started++;
            in_flight++;
        }
        int ready = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < ready; i++)
        {
            struct conn *c = &cs[events[i].data.u32];
            if (c->step == 0)
            {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { failed++; in_flight--; close(c->fd); c->fd = -1; continue; }
                struct epoll_event ce = { .events = EPOLLIN, .data.u32 = events[i].data.u32 };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ce);
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
        long long expected = sent_b * total;
        if (got_msgs > lat_cap) got_msgs = lat_cap;
        qsort(lat, got_msgs, sizeof *lat, cmp_ll);
        double p50 = got_msgs ? lat[got_msgs / 2] / 1000.0 : 0, p99 = got_msgs ? lat[got_msgs * 99 / 100] / 1000.0 : 0;
        double max = got_msgs ? lat[got_msgs - 1] / 1000.0 : 0;
        printf("broadcasts=%lld delivered=%lld expected=%lld p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", sent_b, got_msgs, expected, p50, p99, max);
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

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]), atoi(argv[3]));
    if (argc == 8 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), atoi(argv[3]), argv[4], atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
    fprintf(stderr, "usage: floor server <port> <beat-ms>\n       floor client <port> <connections> idle|fanout|connect <seconds> <sources> <beat-ms>\n");
    return 2;
}
