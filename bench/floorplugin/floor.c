/*
 * The floor of the function case: a plugin that costs as little as a plugin can.
 *
 * It speaks just enough of eKuiper's portable-plugin protocol (nng's SP framing over
 * Unix sockets, as the SDK's _transport/wire.py describes it) to serve one function,
 * benchrevert_floor, whose every call on the bench's rows has the same answer: each
 * Exec is answered with a reply built once, Validate with "" and IsAggregate with false.
 * No JSON is parsed, nothing is allocated per call: what is left per call is the two
 * system calls and the wake-ups any plugin pays. bench/run.py measures this SDK's
 * function rate against it, on fresh kuiperds in alternating order.
 *
 * It waits for eKuiper's next call as the SDK's socket transport does: polling for up to
 * EKUIPER_FUNCTION_SPIN_US (100 µs unset) while calls keep coming that fast, sleeping in
 * recv otherwise; EKUIPER_FUNCTION_SPIN_US=0 makes it sleep always, as a plain plugin does.
 *
 * Not a plugin to copy: it answers every control command "ok" and knows one symbol.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SYMBOL "benchrevert_floor"
#define REQ_PROTOCOL 0x30
#define MAX_FRAME (1 << 20)

static const char EXEC_REPLY[] = "{\"state\":true,\"result\":\"kramhcneb\"}";
static const char VALIDATE_REPLY[] = "{\"state\":true,\"result\":\"\"}";
static const char AGGREGATE_REPLY[] = "{\"state\":true,\"result\":false}";

struct req {
    int fd;
    uint32_t next_id;
    int quick; /* the last receive waited less than spin_ns: the next one polls */
    unsigned char buf[MAX_FRAME + 13];
};

static long long spin_ns; /* the function channel's poll window; 0: never poll */

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "benchfloor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* recv, after polling for up to spin first (the SDK's ReqDialer does the same). */
static ssize_t recv_spinning(int fd, void *dst, size_t n, long long spin) {
    if (spin) {
        long long deadline = now_ns() + spin;
        do {
            ssize_t got = recv(fd, dst, n, MSG_DONTWAIT);
            if (got >= 0 || errno != EAGAIN) return got;
        } while (now_ns() < deadline);
    }
    return recv(fd, dst, n, 0);
}

static void read_all(int fd, void *dst, size_t n, long long spin) {
    unsigned char *p = dst;
    while (n) {
        ssize_t got = recv_spinning(fd, p, n, spin);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            exit(got == 0 ? 0 : 1); /* eKuiper closed the channel: nothing left to serve */
        }
        p += got;
        n -= (size_t)got;
    }
}

static void write_all(int fd, const void *src, size_t n) {
    const unsigned char *p = src;
    while (n) {
        ssize_t sent = send(fd, p, n, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            die("send");
        }
        p += sent;
        n -= (size_t)sent;
    }
}

/* Dial eKuiper's REP at path (it may not listen yet) and exchange SP headers. */
static void req_dial(struct req *r, const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    static const unsigned char header[8] = {0, 'S', 'P', 0, 0, REQ_PROTOCOL, 0, 0};
    unsigned char peer[8];
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    for (int attempt = 0;; attempt++) {
        r->fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (r->fd < 0) die("socket");
        if (connect(r->fd, (struct sockaddr *)&addr, sizeof addr) == 0) break;
        close(r->fd);
        if (attempt > 600) die(path);
        usleep(100000);
    }
    write_all(r->fd, header, sizeof header);
    read_all(r->fd, peer, sizeof peer, 0);
    r->next_id = 1;
}

/* Send one request: kind 1, the length, the request id with its top bit set, the body. */
static void req_send(struct req *r, const char *body, size_t len) {
    unsigned char *b = r->buf;
    uint64_t size = len + 4;
    uint32_t id = r->next_id++ | 0x80000000u;
    b[0] = 1;
    for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(size >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) b[9 + i] = (unsigned char)(id >> (24 - 8 * i));
    memcpy(b + 13, body, len);
    write_all(r->fd, b, 13 + len);
}

/* Receive one reply; its body (after the request id) is returned, NUL-terminated. */
static const char *req_recv(struct req *r, size_t *len) {
    unsigned char head[9];
    uint64_t size = 0;
    long long began = now_ns();
    read_all(r->fd, head, sizeof head, r->quick ? spin_ns : 0);
    r->quick = spin_ns && now_ns() - began < spin_ns;
    for (int i = 0; i < 8; i++) size = (size << 8) | head[1 + i];
    if (size < 4 || size > MAX_FRAME) {
        fprintf(stderr, "benchfloor: frame of %llu bytes\n", (unsigned long long)size);
        exit(1);
    }
    read_all(r->fd, r->buf, size, 0);
    r->buf[size] = 0;
    *len = size - 4;
    return (const char *)r->buf + 4;
}

static void *serve_function(void *unused) {
    static struct req r;
    const char *spin_us = getenv("EKUIPER_FUNCTION_SPIN_US");
    spin_ns = (spin_us && *spin_us ? atoll(spin_us) : 100) * 1000;
    const char *reply = "handshake";
    size_t reply_len = strlen(reply), len;
    (void)unused;
    req_dial(&r, "/tmp/func_" SYMBOL ".ipc");
    for (;;) {
        req_send(&r, reply, reply_len);
        const char *call = req_recv(&r, &len);
        if (strncmp(call, "{\"func\":\"Exec\"", 14) == 0) {
            reply = EXEC_REPLY;
        } else if (strstr(call, "\"Validate\"") != NULL) {
            reply = VALIDATE_REPLY;
        } else {
            reply = AGGREGATE_REPLY;
        }
        reply_len = strlen(reply);
    }
    return NULL;
}

int main(int argc, char **argv) {
    static struct req control;
    char path[108];
    const char *name = getenv("BENCH_FLOOR_PLUGIN");
    int serving = 0;
    size_t len;
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/plugin_%s.ipc", name ? name : "benchfloor");
    req_dial(&control, path);
    req_send(&control, "handshake", 9);
    for (;;) {
        const char *command = req_recv(&control, &len);
        if (!serving && strstr(command, SYMBOL) != NULL && strstr(command, "start") != NULL) {
            pthread_t thread;
            if (pthread_create(&thread, NULL, serve_function, NULL) != 0) die("thread");
            serving = 1;
        }
        req_send(&control, "ok", 2);
    }
}
