/* A load generator outside zabby's own code: Apache ZooKeeper's C client
 * (libzookeeper_mt, Debian's libzookeeper-mt-dev) drives the server, so the figures
 * do not depend on zabby's wire codec or on the Python bench client.
 *
 *   zkc_load HOSTS get|set SESSIONS OUTSTANDING SECONDS WARMUP [VALUE_BYTES [KEYS]]
 *
 * Each session keeps OUTSTANDING async getData / setData calls in flight on random keys
 * of /zkc_load (created first, VALUE_BYTES each). Only completions inside the window
 * after WARMUP seconds count. Prints one JSON line: ops_per_sec, p50 / p90 / p99 ms,
 * errors, and the generator's own CPU seconds. Built and run by
 * benchmarks/independent_load.py; not a test.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#define THREADED 1 /* the synchronous calls of the multithreaded library */
#include <zookeeper/zookeeper.h>

#define ROOT "/zkc_load"

typedef struct session session;

typedef struct {
    session *s;
    uint64_t t0;
} slot;

struct session {
    zhandle_t *zh;
    int idx;
    unsigned seed;
    slot *slots;
    pthread_mutex_t mu;
    uint64_t *lat; /* ns, completions inside the window */
    size_t nlat, cap;
    long errors;
};

static volatile int phase; /* 0 warm-up, 1 measuring, 2 stopping */
static int is_set, keys = 1000, value_len = 1024;
static char *value;
static long inflight;
static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t conn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cv = PTHREAD_COND_INITIALIZER;
static int connected;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)path; (void)ctx;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&conn_mu);
        connected++;
        pthread_cond_broadcast(&conn_cv);
        pthread_mutex_unlock(&conn_mu);
    }
}

static void issue(slot *sl);

static void done(slot *sl, int rc) {
    session *s = sl->s;
    uint64_t t1 = now_ns();
    if (phase == 1) {
        pthread_mutex_lock(&s->mu);
        if (rc != ZOK) {
            s->errors++;
        } else {
            if (s->nlat == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 65536;
                s->lat = realloc(s->lat, s->cap * sizeof *s->lat);
                if (!s->lat) {
                    perror("realloc");
                    exit(2);
                }
            }
            s->lat[s->nlat++] = t1 - sl->t0;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (phase < 2) {
        issue(sl);
    } else {
        pthread_mutex_lock(&inflight_mu);
        inflight--;
        pthread_mutex_unlock(&inflight_mu);
    }
}

static void get_done(int rc, const char *v, int vlen, const struct Stat *st, const void *data) {
    (void)v; (void)vlen; (void)st;
    done((slot *)data, rc);
}

static void set_done(int rc, const struct Stat *st, const void *data) {
    (void)st;
    done((slot *)data, rc);
}

static void issue(slot *sl) {
    session *s = sl->s;
    char path[64];
    snprintf(path, sizeof path, ROOT "/k%d", (int)(rand_r(&s->seed) % (unsigned)keys));
    sl->t0 = now_ns();
    int rc = is_set ? zoo_aset(s->zh, path, value, value_len, -1, set_done, sl)
                    : zoo_aget(s->zh, path, 0, get_done, sl);
    if (rc != ZOK) { /* not sent (connection lost): count it, and stop this slot */
        pthread_mutex_lock(&s->mu);
        s->errors++;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&inflight_mu);
        inflight--;
        pthread_mutex_unlock(&inflight_mu);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOSTS get|set SESSIONS OUTSTANDING SECONDS WARMUP "
                        "[VALUE_BYTES [KEYS]]\n", argv[0]);
        return 2;
    }
    const char *hosts = argv[1];
    is_set = strcmp(argv[2], "set") == 0;
    int nsess = atoi(argv[3]), out = atoi(argv[4]);
    double seconds = atof(argv[5]), warmup = atof(argv[6]);
    if (argc > 7)
        value_len = atoi(argv[7]);
    if (argc > 8)
        keys = atoi(argv[8]);
    if (nsess < 1 || out < 1 || seconds <= 0 || keys < 1 || value_len < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    value = malloc((size_t)value_len + 1);
    memset(value, 'v', (size_t)value_len);

    session *ss = calloc((size_t)nsess, sizeof *ss);
    for (int i = 0; i < nsess; i++) {
        ss[i].idx = i;
        ss[i].seed = 12345u + (unsigned)i;
        pthread_mutex_init(&ss[i].mu, NULL);
        ss[i].zh = zookeeper_init(hosts, watcher, 30000, 0, 0, 0);
        if (!ss[i].zh) {
            perror("zookeeper_init");
            return 1;
        }
    }
    uint64_t deadline = now_ns() + 30ull * 1000000000ull;
    pthread_mutex_lock(&conn_mu);
    while (connected < nsess && now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&conn_cv, &conn_mu, &ts);
    }
    pthread_mutex_unlock(&conn_mu);
    if (connected < nsess) {
        fprintf(stderr, "only %d of %d sessions connected\n", connected, nsess);
        return 1;
    }
    /* the keys (synchronous, first session): an existing one keeps its value */
    zhandle_t *zh = ss[0].zh;
    int rc = zoo_create(zh, ROOT, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) {
        fprintf(stderr, "create %s: %s\n", ROOT, zerror(rc));
        return 1;
    }
    char last[64];
    snprintf(last, sizeof last, ROOT "/k%d", keys - 1);
    struct Stat st;
    int have = zoo_exists(zh, last, 0, &st) == ZOK; /* made by an earlier run */
    for (int k = 0; k < keys && !have; k++) {
        char path[64];
        snprintf(path, sizeof path, ROOT "/k%d", k);
        rc = zoo_create(zh, path, value, value_len, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK && rc != ZNODEEXISTS) {
            fprintf(stderr, "create %s: %s\n", path, zerror(rc));
            return 1;
        }
    }

    inflight = (long)nsess * out;
    for (int i = 0; i < nsess; i++) {
        ss[i].slots = calloc((size_t)out, sizeof(slot));
        for (int j = 0; j < out; j++) {
            ss[i].slots[j].s = &ss[i];
            issue(&ss[i].slots[j]);
        }
    }
    usleep((useconds_t)(warmup * 1e6));
    double c0 = cpu_seconds();
    uint64_t t0 = now_ns();
    phase = 1;
    usleep((useconds_t)(seconds * 1e6));
    phase = 2;
    uint64_t t1 = now_ns();
    double c1 = cpu_seconds();
    /* let what is in flight finish (each slot stops at its next completion) */
    deadline = now_ns() + 10ull * 1000000000ull;
    for (;;) {
        pthread_mutex_lock(&inflight_mu);
        long left = inflight;
        pthread_mutex_unlock(&inflight_mu);
        if (left <= 0 || now_ns() > deadline)
            break;
        usleep(1000);
    }

    size_t n = 0;
    long errors = 0;
    for (int i = 0; i < nsess; i++) {
        n += ss[i].nlat;
        errors += ss[i].errors;
    }
    uint64_t *all = malloc((n ? n : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < nsess; i++) {
        memcpy(all + at, ss[i].lat, ss[i].nlat * sizeof *all);
        at += ss[i].nlat;
    }
    qsort(all, n, sizeof *all, cmp_u64);
    double win = (double)(t1 - t0) / 1e9;
#define PCT(p) (n ? all[(size_t)((double)(n - 1) * (p))] / 1e6 : 0.0)
    printf("{\"ops_per_sec\": %.1f, \"ops\": %zu, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
           "\"p99_ms\": %.4f, \"errors\": %ld, \"client_cpu_s\": %.3f, \"seconds\": %.3f}\n",
           (double)n / win, n, PCT(0.50), PCT(0.90), PCT(0.99), errors, c1 - c0, win);
    fflush(stdout);
    for (int i = 0; i < nsess; i++)
        zookeeper_close(ss[i].zh);
    return 0;
}
