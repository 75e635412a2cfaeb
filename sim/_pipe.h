/* A single-producer single-consumer ring of 8-byte messages between the two threads of a pipelined
 * simulation (sim/_ccore.pyx, Core.run_pipelined): the first stage's spikes into the second stage's cores, each
 * input closed by an end-of-input message followed by two words (the input's release time, its cascade steps).
 * Each side keeps its own copy of the other's index and publishes its own every SS_RING_BATCH messages (or when
 * it must wait): the shared indices, each on its own cache line, cross between the CPU cores a few times per
 * thousand messages instead of on every one. A side that must wait spins briefly, then sleeps 20 µs at a time.
 * GCC / Clang atomics. */
#ifndef SPECKSTREAM_PIPE_H
#define SPECKSTREAM_PIPE_H
/* Built with GCC / Clang on POSIX systems (atomics builtins, nanosleep); elsewhere SS_PIPE is 0, ss_ring_init
 * fails and the simulator runs one thread (sim/pipeline.py checks _ccore.PIPELINE). */
#if defined(__GNUC__) && !defined(_WIN32)
#define SS_PIPE 1
#else
#define SS_PIPE 0
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SS_MSG_SPIKE = 0, SS_MSG_INPUT_END = 1, SS_MSG_STREAM_END = 2 };
#define SS_RING_BATCH 512

typedef struct {
    uint16_t c, x, y;
    uint8_t core, kind;
} ss_msg;

#if SS_PIPE
typedef struct {
    ss_msg *buf;
    int64_t cap;                     /* a power of two */
    _Alignas(64) int64_t head;       /* next to read: the consumer's, published */
    _Alignas(64) int64_t tail;       /* next to write: the producer's, published */
    _Alignas(64) int abort;          /* either side gave up (error): the other stops waiting */
    _Alignas(64) int64_t local_tail; /* producer-only: its tail and its copy of head */
    int64_t seen_head;
    _Alignas(64) int64_t local_head; /* consumer-only: its head and its copy of tail */
    int64_t seen_tail;
} ss_ring;

static int ss_ring_init(ss_ring *r, int64_t cap)
{
    memset(r, 0, sizeof *r);
    r->buf = (ss_msg *)malloc((size_t)cap * sizeof(ss_msg));
    r->cap = cap;
    return r->buf == NULL ? -1 : 0;
}

static void ss_ring_free(ss_ring *r)
{
    free(r->buf);
    r->buf = NULL;
}

static void ss_pause(int *spins)
{
    if (++*spins < 200) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

static inline void ss_ring_abort(ss_ring *r)
{
    __atomic_store_n(&r->abort, 1, __ATOMIC_RELEASE);
}

static inline int ss_ring_aborted(ss_ring *r)
{
    return __atomic_load_n(&r->abort, __ATOMIC_ACQUIRE);
}

/* Producer: make what was pushed visible. */
static inline void ss_ring_publish(ss_ring *r)
{
    __atomic_store_n(&r->tail, r->local_tail, __ATOMIC_RELEASE);
}

/* Producer: append one message. -1: the consumer gave up. */
static inline int ss_ring_push(ss_ring *r, const ss_msg *m)
{
    if (r->local_tail - r->seen_head >= r->cap) {
        r->seen_head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        if (r->local_tail - r->seen_head >= r->cap) {
            ss_ring_publish(r);
            int spins = 0;
            do {
                if (ss_ring_aborted(r))
                    return -1;
                ss_pause(&spins);
                r->seen_head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
            } while (r->local_tail - r->seen_head >= r->cap);
        }
    }
    r->buf[r->local_tail & (r->cap - 1)] = *m;
    r->local_tail++;
    if ((r->local_tail & (SS_RING_BATCH - 1)) == 0)
        ss_ring_publish(r);
    return 0;
}

/* Producer: a 64-bit word in the next slot. */
static inline int ss_ring_push_word(ss_ring *r, uint64_t word)
{
    ss_msg m;
    memcpy(&m, &word, sizeof m);
    return ss_ring_push(r, &m);
}

/* Consumer: copy the next message to *out (waiting for it). -1: the producer gave up. */
static inline int ss_ring_next(ss_ring *r, ss_msg *out)
{
    if (r->local_head == r->seen_tail) {
        __atomic_store_n(&r->head, r->local_head, __ATOMIC_RELEASE); /* all read: the producer may reuse it */
        r->seen_tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        int spins = 0;
        while (r->local_head == r->seen_tail) {
            if (ss_ring_aborted(r))
                return -1;
            ss_pause(&spins);
            r->seen_tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        }
    }
    *out = r->buf[r->local_head & (r->cap - 1)]; /* copied before its slot can be handed back */
    r->local_head++;
    if ((r->local_head & (SS_RING_BATCH - 1)) == 0)
        __atomic_store_n(&r->head, r->local_head, __ATOMIC_RELEASE);
    return 0;
}

/* Consumer: the 64-bit word in the next slot. */
static inline int ss_ring_next_word(ss_ring *r, uint64_t *word)
{
    ss_msg m;
    if (ss_ring_next(r, &m) < 0)
        return -1;
    memcpy(word, &m, sizeof *word);
    return 0;
}
#else /* no pipeline on this compiler / system: the calls exist, the ring never starts */
typedef struct {
    int unused;
} ss_ring;
static int ss_ring_init(ss_ring *r, int64_t cap) { (void)r; (void)cap; return -1; }
static void ss_ring_free(ss_ring *r) { (void)r; }
static inline void ss_ring_abort(ss_ring *r) { (void)r; }
static inline void ss_ring_publish(ss_ring *r) { (void)r; }
static inline int ss_ring_push(ss_ring *r, const ss_msg *m) { (void)r; (void)m; return -1; }
static inline int ss_ring_push_word(ss_ring *r, uint64_t w) { (void)r; (void)w; return -1; }
static inline int ss_ring_next(ss_ring *r, ss_msg *m) { (void)r; (void)m; return -1; }
static inline int ss_ring_next_word(ss_ring *r, uint64_t *w) { (void)r; (void)w; return -1; }
#endif
#endif
