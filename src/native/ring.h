/* The shm:// channel's shared declarations (ring.c: records, send/recv,
 * loans; ring_obj.c: the object, its type and construction; chanwait.c:
 * the wait policy and wake-ups; bell.c: the fileno() doorbell).
 *
 * Duplex shared-memory channel: two single-producer single-consumer byte
 * rings in one segment.
 *
 * Segment user area (little-endian, offsets in bytes):
 *
 *     0     magic u32 "IPCH", version u32, capacity u64 (bytes per ring)
 *     16    flags u32, pad u32
 *     24    side A ident (pid u32, pad, start u64); 40 side B ident
 *     64    closed[A] u32, closed[B] u32, asym[A] u32, asym[B] u32 (own line)
 *     256   ring 0 header (A -> B), 512 ring 1 header (B -> A)
 *     4096  ring 0 data, then ring 1 data (capacity bytes each)
 *
 * A ring header holds four cache lines, each written by one side only so
 * that the fast path does not bounce lines it does not need:
 *     +0   head  (producer)        +64  tail (consumer)
 *     +128 data_seq, data_wait, data_fdwait   (consumer sleeps on data_seq,
 *                                               or polls its doorbell)
 *     +192 space_seq, space_wait, space_fdwait (the same for the producer)
 *
 * Doorbells (bell.c): a side that waits on a file descriptor instead of the
 * futex publishes its pipe at OFF_BELL + 16 * side (u32 fd, pad, u64 inode)
 * and sets *_fdwait; the other side then opens that pipe through
 * /proc/PID/fd and writes a byte.
 *
 * Records are 8-byte aligned: u32 length, u32 tag (MSG or PAD), payload.
 * A record never wraps: when it does not fit before the end of the ring, a
 * PAD record fills the rest and the message starts at offset 0, so every
 * message is contiguous (which is what makes recv_view zero-copy).  Hence a
 * message fits iff 8 + align8(len) <= capacity / 2.
 *
 * Head and tail are free-running u64 byte counters.  Each side keeps its own
 * cursor privately and only *writes* it to shared memory; what it *reads*
 * from the other side is validated (0 <= head - tail <= capacity, records
 * inside the ring and inside the published bytes) before use, so a corrupted
 * or hostile segment yields ProtocolError, never an out-of-bounds access.
 */
#ifndef INTERPROC_RING_H
#define INTERPROC_RING_H

#include "native.h"
#include "doorbell.h"

#include <time.h>

#define CHAN_MAGIC 0x48435049u /* "IPCH" */
#define CHAN_VERSION 1u
#define CHAN_DATA 4096
#define OFF_CLOSED 64
#define OFF_ASYM 72
#define OFF_BELL 128
#define OFF_RING0 256
#define OFF_RING1 512
#define TAG_MSG 0x4753u
#define TAG_PAD 0x4450u
#define MIN_CAPACITY 4096
#define MAX_CAPACITY (1ULL << 31)
#define NLOANS 1024

#define SLICE_NS 100000000LL     /* sleep slices: peer-death check interval */
#define SPIN_CHECK_NS 1000000LL  /* pure spin: signal check interval */
#define GIL_SPIN_NS 4000LL       /* spin this long before giving up the GIL */

enum { POLICY_HYBRID, POLICY_SPIN, POLICY_SLEEP };

typedef struct {
    uint64_t head;
    char pad0[56];
    uint64_t tail;
    char pad1[56];
    uint32_t data_seq, data_wait, data_fdwait;
    char pad2[52];
    uint32_t space_seq, space_wait, space_fdwait;
    char pad3[52];
} ring_hdr;

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    uint64_t cap;
    int side;
    ring_hdr *tx, *rx;
    char *txdata, *rxdata;
    uint32_t *my_closed, *peer_closed;
    uint32_t *peer_asym;  /* the peer fences with membarrier before sleeping */
    int asym;             /* and so do we */
    uint64_t head;       /* tx: private producer cursor */
    uint64_t tail_seen;  /* tx: last tail read from the consumer */
    uint64_t rpos;       /* rx: private read cursor */
    uint64_t head_seen;  /* rx: last head read from the producer */
    /* Loans (recv_view) release ring space in order: a FIFO of record ends. */
    uint64_t loan_end[NLOANS];
    uint8_t loan_done[NLOANS];
    uint64_t loan_first, loan_next;
    Py_ssize_t live_loans;
    int closed, broken, peer_dead;
    int pidfd;
    int policy;
    long long spin_ns;
    int busy_send, busy_recv, waiters; /* threads inside a call that may block */
    pid_t owner; /* the process that made this end: only it may mark it closed */
    uint32_t interrupts;
    /* Doorbell (bell.c, doorbell.c), made by the first fileno(): ours, and
     * the peer's pipe once opened. */
    ip_doorbell bell;
    ip_bell_peer peer_bell;
} ChanObject;

enum { W_READY, W_TIMEOUT, W_CHECK, W_DEAD };

/* chanwait.c */
int ip_peer_gone(ChanObject *self);
int ip_chan_wait(ChanObject *self, int for_space, uint64_t need, long long deadline);
void ip_chan_wake(uint32_t *word);

/* ring.c: records, send and receive */
typedef struct {
    PyObject_HEAD
    ChanObject *chan;
    char *ptr;
    Py_ssize_t len;
    uint64_t seq;
    int exports, done;
} LoanObject;
extern PyTypeObject ip_loan_type; /* ring_obj.c */

PyObject *chan_send(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *chan_recv(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *chan_recv_into(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *chan_recv_view(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
void chan_drop_view(ChanObject *self);
void loan_finish(ChanObject *self, uint64_t seq);

/* Exceptions given meaning by Python (interproc._errors): the module state. */
#define err_closed ip_error(IP_ERR_CLOSED, NULL)
#define err_timeout ip_error(IP_ERR_TIMEOUT, NULL)
#define err_protocol ip_error(IP_ERR_PROTOCOL, NULL)
#define err_too_large ip_error(IP_ERR_TOO_LARGE, NULL)

static inline PyObject *
exc(PyObject *cls, PyObject *fallback)
{
    return cls ? cls : fallback;
}

#define deadline_ns ip_deadline_ns
#define parse_args ip_parse_timeout_args

static inline uint64_t
max_message(ChanObject *self)
{
    return self->cap / 2 - 8;
}

/* bell.c */
void ip_bell_init(ChanObject *self);
void ip_bell_wake(ChanObject *self, uint32_t *flag, uint32_t *word);
void ip_bell_ring_peer(ChanObject *self);
void ip_bell_ring_self(ChanObject *self);
void ip_bell_close(ChanObject *self);
int ip_bell_rearm(ChanObject *self);
PyObject *ip_bell_fileno(ChanObject *self, PyObject *unused);
PyObject *ip_bell_arm_recv(ChanObject *self, PyObject *unused);
PyObject *ip_bell_arm_send(ChanObject *self, PyObject *arg);
PyObject *ip_bell_drain(ChanObject *self, PyObject *unused);

/* -- small inline helpers (hot path) --------------------------------------- */

static inline uint64_t
align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* -- readiness (no Python API: called with the GIL released) --------------- */

/* Bytes a record of `len` takes at the current head, including padding. */
static inline uint64_t
tx_need(ChanObject *self, uint64_t len)
{
    uint64_t rec = 8 + align8(len);
    uint64_t to_end = self->cap - self->head % self->cap;
    return rec <= to_end ? rec : to_end + rec;
}

static inline int
rx_ready(ChanObject *self)
{
    if (__atomic_load_n(&self->rx->head, __ATOMIC_ACQUIRE) != self->rpos)
        return 1;
    return __atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE) != 0;
}

static inline int
tx_ready(ChanObject *self, uint64_t need)
{
    uint64_t tail = __atomic_load_n(&self->tx->tail, __ATOMIC_ACQUIRE);
    uint64_t used = self->head - tail;
    /* An impossible tail is "ready" too: the caller's checks report it. */
    if (used > self->cap || self->cap - used >= need)
        return 1;
    return __atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE) != 0;
}

static inline int
ready(ChanObject *self, int for_space, uint64_t need, uint32_t intr)
{
    if (__atomic_load_n(&self->interrupts, __ATOMIC_ACQUIRE) != intr ||
        __atomic_load_n(&self->closed, __ATOMIC_RELAXED))
        return 1;
    return for_space ? tx_ready(self, need) : rx_ready(self);
}

/* Store an index, then wake the other side if it announced it sleeps. */
static inline void
publish(ChanObject *self, uint64_t *index, uint64_t value, uint32_t *flag, uint32_t *word)
{
    if (ip_asym_ok == 1 && __atomic_load_n(self->peer_asym, __ATOMIC_RELAXED)) {
        __atomic_store_n(index, value, __ATOMIC_RELEASE);
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* compiler only: see heavy_fence */
    } else {
        __atomic_store_n(index, value, __ATOMIC_SEQ_CST); /* full barrier (Dekker) */
    }
    /* flag[1] is the fd-waiter flag next to it, in the same cache line. */
    if (__atomic_load_n(flag, __ATOMIC_RELAXED) | __atomic_load_n(flag + 1, __ATOMIC_RELAXED))
        ip_bell_wake(self, flag, word);
}
#endif
