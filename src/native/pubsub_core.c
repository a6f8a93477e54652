/* The pub/sub hot path in C: PubCore.send/claim/publish, SubCore.recv and
 * the Sample it hands out (layout: pubsub.h and interproc/_pubsub/).
 *
 * Python validates the geometry once and builds a core over the segment;
 * after that a send or a recv is one C call with no Python frame, as for
 * shm:// channels.  What is slow and rare stays in Python: the futex sleeps
 * with their peer-death checks and the reaping of dead subscribers.  The
 * cores call back into Python (`slow_wait`) only after their spin budget.
 *
 * Waking waiters: subscribers that sleep count themselves in sub_waiters
 * (the publisher checks it after every publish, as before); a subscriber
 * that waits on a descriptor (asyncio) also counts itself there and sets
 * the fdwait word of its entry's doorbell, and the publisher then rings the
 * doorbells that are armed.  Likewise the publisher's own doorbell in the
 * header, rung by a release when the publisher waits for room. */
#include "pubsub.h"

#include <limits.h>
#include <sched.h>
#include <string.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view, closed;
    char *base;
    uint32_t max_subs, slots, history;
    uint64_t slot_size, stride, slots_off;
    PyObject *slow_wait; /* slow_wait(seq, timeout): returns once there may be room */
    long long spin_ns;
    /* publisher */
    int64_t seq, gen, min_read;
    int loaned;
    int *bells;           /* per entry: our write end of its doorbell, or -1 */
    uint64_t *bell_inos;
    /* subscriber */
    Py_ssize_t entry;
    int policy;
    int64_t cursor, read_pos, received, dropped;
    uint8_t *held;        /* samples held, by seq % slots */
    Py_ssize_t live;      /* slot views still exported */
    int pub_bell;
    uint64_t pub_bell_ino;
} CoreObject;

typedef struct {
    PyObject_HEAD
    CoreObject *core; /* NULL once released */
    int64_t seq;
    PyObject *buf;
} SampleObject;

typedef struct {
    PyObject_HEAD
    CoreObject *core;
    char *ptr;
    Py_ssize_t len;
    int exports, done;
} SlotViewObject;

static PyTypeObject Core_Type, Sample_Type, SlotView_Type;

#define AT(self, off, T) ((T *)((self)->base + (off)))

static inline int64_t
load64(CoreObject *self, Py_ssize_t off)
{
    return __atomic_load_n(AT(self, off, int64_t), __ATOMIC_SEQ_CST);
}

static int
closed_check(CoreObject *self, const char *who)
{
    if (self->closed || !self->has_view) {
        PyErr_Format(ip_error(IP_ERR_HANDLE_CLOSED, PyExc_ValueError), "%s is closed", who);
        return -1;
    }
    return 0;
}

/* Remaining seconds to a deadline as a Python float, or None. */
static PyObject *
remaining(long long deadline)
{
    if (deadline < 0)
        return Py_NewRef(Py_None);
    long long left = deadline - mono_ns();
    return PyFloat_FromDouble(left > 0 ? left / 1e9 : 0.0);
}

/* -- doorbells ------------------------------------------------------------ */

static void
ring(int *cache, uint64_t *cache_ino, ps_bell *b, uint32_t pid, int force)
{
    uint64_t ino = __atomic_load_n(&b->ino, __ATOMIC_ACQUIRE);
    if (ino == 0)
        return;
    if (!force && !(__atomic_load_n(&b->fdwait, __ATOMIC_RELAXED) &&
                    __atomic_exchange_n(&b->fdwait, 0, __ATOMIC_SEQ_CST)))
        return;
    if (*cache >= 0 && *cache_ino != ino) {
        close(*cache);
        *cache = -1;
    }
    if (*cache < 0) {
        *cache = ip_bell_open(pid, __atomic_load_n(&b->fd, __ATOMIC_RELAXED), ino);
        *cache_ino = ino;
        if (*cache < 0)
            return;
    }
    ip_bell_write(*cache);
}

/* Ring the armed doorbells of subscribers (all of them when `force`). */
static void
ring_subscribers(CoreObject *self, int force)
{
    uint32_t hwm = __atomic_load_n(AT(self, PS_OFF_HWM, uint32_t), __ATOMIC_ACQUIRE);
    if (hwm > self->max_subs)
        hwm = self->max_subs;
    for (uint32_t i = 0; i < hwm; i++) {
        Py_ssize_t e = PS_OFF_TABLE + (Py_ssize_t)i * PS_ENTRY;
        uint32_t pid = __atomic_load_n(AT(self, e + PS_E_PID, uint32_t), __ATOMIC_RELAXED);
        ring(&self->bells[i], &self->bell_inos[i], AT(self, e + PS_E_BELL, ps_bell), pid, force);
    }
}

/* -- publisher ------------------------------------------------------------- */

/* The oldest sample a live block subscriber still needs (seq if none); -1
 * with ProtocolError set on a corrupted table. */
static int
scan(CoreObject *self, int64_t seq, int64_t *low_out)
{
    int64_t low = seq;
    uint32_t hwm = __atomic_load_n(AT(self, PS_OFF_HWM, uint32_t), __ATOMIC_SEQ_CST);
    if (hwm > self->max_subs)
        hwm = self->max_subs;
    for (uint32_t i = 0; i < hwm; i++) {
        Py_ssize_t e = PS_OFF_TABLE + (Py_ssize_t)i * PS_ENTRY;
        int64_t state = load64(self, e + PS_E_WORD) & 0xFF;
        if (state == PS_ACTIVE) {
            if (__atomic_load_n(AT(self, e + PS_E_POLICY, uint32_t), __ATOMIC_SEQ_CST) != PS_BLOCK)
                continue;
            int64_t r = load64(self, e + PS_E_READ);
            if (r < 0 || r > seq) {
                PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError),
                             "publisher: subscriber entry %u claims to have read sample %lld of "
                             "%lld; the segment is corrupted", i, (long long)r, (long long)seq);
                return -1;
            }
            if (r < low)
                low = r;
        } else if (state != PS_FREE && state != PS_CLAIMING) {
            PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError),
                         "publisher: subscriber entry %u has state %lld; the segment is corrupted",
                         i, (long long)state);
            return -1;
        }
    }
    *low_out = low;
    return 0;
}

/* 1 when sample `seq` may be written, 0 not yet, -1 error. */
static int
room(CoreObject *self, int64_t seq)
{
    int64_t need = seq - (int64_t)self->slots + 1;
    int64_t gen = load64(self, PS_OFF_GEN);
    if (gen == self->gen && self->min_read >= need)
        return 1;
    self->gen = gen;
    if (scan(self, seq, &self->min_read) < 0)
        return -1;
    return self->min_read >= need;
}

/* Wait for the next slot and mark it being written; returns its offset or -1. */
static Py_ssize_t
claim(CoreObject *self, uint64_t n, PyObject *timeout)
{
    if (closed_check(self, "publisher") < 0)
        return -1;
    if (n > self->slot_size) {
        PyErr_Format(ip_error(IP_ERR_TOO_LARGE, PyExc_ValueError),
                     "publisher: %llu bytes do not fit a %llu-byte slot",
                     (unsigned long long)n, (unsigned long long)self->slot_size);
        return -1;
    }
    if (self->loaned) {
        PyErr_SetString(PyExc_ValueError,
                        "publisher already has a loan out; publish or discard it first");
        return -1;
    }
    long long deadline = -1;
    if (timeout != Py_None && ip_deadline_ns(timeout, &deadline) < 0)
        return -1; /* a bad timeout is an error even when no wait is needed */
    int64_t seq = self->seq;
    int r = room(self, seq);
    if (r == 0) {
        long long spin_until = mono_ns() + self->spin_ns;
        for (unsigned i = 1; (r = room(self, seq)) == 0; i++) {
            ip_cpu_relax();
            if ((i & 63) == 0 && mono_ns() >= spin_until) {
                /* Python sleeps on the futex, reaps dead subscribers and
                 * raises Timeout; we look again when it returns. */
                PyObject *left = remaining(deadline);
                if (!left)
                    return -1;
                PyObject *res = PyObject_CallFunction(self->slow_wait, "LO", (long long)seq, left);
                Py_DECREF(left);
                if (!res)
                    return -1;
                Py_DECREF(res);
                if (closed_check(self, "publisher") < 0)
                    return -1;
                self->gen = -1; /* rescan */
                spin_until = 0;
            }
        }
    }
    if (r < 0)
        return -1;
    Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(seq % self->slots) * self->stride);
    /* Mark the slot before touching its bytes: a drop_oldest reader that
     * copied the old sample sees the mark change and discards its copy. */
    __atomic_store_n(AT(self, off, int64_t), (int64_t)PS_WRITING, __ATOMIC_SEQ_CST);
    self->loaned = 1;
    return off;
}

static void
publish(CoreObject *self, Py_ssize_t off, uint64_t n)
{
    int64_t *hdr = AT(self, off, int64_t);
    int64_t seq = self->seq;
    __atomic_store_n(&hdr[1], (int64_t)n, __ATOMIC_SEQ_CST);
    __atomic_store_n(&hdr[0], seq, __ATOMIC_SEQ_CST);
    /* seq_cst store, then the load of the waiter count: pairs with the
     * subscriber's increment-then-recheck, so a sleeper is never missed. */
    __atomic_store_n(AT(self, PS_OFF_PUBLISHED, int64_t), seq + 1, __ATOMIC_SEQ_CST);
    if (load64(self, PS_OFF_SUB_WAITERS) != 0) {
        ip_futex(AT(self, PS_OFF_PUBLISHED, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
        ring_subscribers(self, 0);
    }
    self->seq = seq + 1;
    self->loaned = 0;
}

static PyObject *
pub_send(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data, *timeout;
    if (ip_parse_timeout_args("send", args, nargs, kwnames, 1, &data, &timeout) < 0)
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "send() needs a contiguous buffer");
        }
        return NULL;
    }
    Py_ssize_t off = claim(self, (uint64_t)b.len, timeout);
    if (off >= 0) {
        char *dst = self->base + off + PS_SLOT_HEADER;
        if (b.len >= (1 << 18)) {
            Py_BEGIN_ALLOW_THREADS
            memcpy(dst, b.buf, b.len);
            Py_END_ALLOW_THREADS
        } else {
            memcpy(dst, b.buf, b.len);
        }
        publish(self, off, (uint64_t)b.len);
    }
    PyBuffer_Release(&b);
    if (off < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pub_claim(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *nobj, *timeout;
    if (ip_parse_timeout_args("claim", args, nargs, kwnames, 1, &nobj, &timeout) < 0)
        return NULL;
    Py_ssize_t n = PyNumber_AsSsize_t(nobj, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "loan size must be >= 0, got %zd", n);
        return NULL;
    }
    Py_ssize_t off = claim(self, (uint64_t)n, timeout);
    if (off < 0)
        return NULL;
    return Py_BuildValue("(Ln)", (long long)self->seq, off);
}

static PyObject *
pub_publish(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long seq, n;
    if (nargs != 2 || (seq = PyLong_AsLongLong(args[0])) == -1 ||
        (n = PyLong_AsLongLong(args[1])) == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "publish(seq, length) takes two ints");
        return NULL;
    }
    if (closed_check(self, "publisher") < 0)
        return NULL;
    if (!self->loaned || seq != self->seq || n < 0 || (uint64_t)n > self->slot_size) {
        PyErr_SetString(PyExc_ValueError, "this loan was already published or discarded");
        return NULL;
    }
    publish(self, (Py_ssize_t)(self->slots_off + (uint64_t)(seq % self->slots) * self->stride),
            (uint64_t)n);
    Py_RETURN_NONE;
}

static PyObject *
pub_discard(CoreObject *self, PyObject *unused)
{
    self->loaned = 0;
    Py_RETURN_NONE;
}

static PyObject *
pub_has_room(CoreObject *self, PyObject *arg)
{
    long long seq = PyLong_AsLongLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    if (closed_check(self, "publisher") < 0)
        return NULL;
    self->gen = -1;
    int r = room(self, (int64_t)seq);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* -- subscriber ------------------------------------------------------------- */

static PyObject *
bad_slot(CoreObject *self, const char *fmt, long long a, long long b)
{
    PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError), fmt, a, b);
    return NULL;
}

static PyObject *
new_sample(CoreObject *self, int64_t seq, PyObject *buf)
{
    SampleObject *s = PyObject_New(SampleObject, &Sample_Type);
    if (!s) {
        Py_DECREF(buf);
        return NULL;
    }
    s->core = (CoreObject *)Py_NewRef(self);
    s->seq = seq;
    s->buf = buf;
    return (PyObject *)s;
}

/* Block policy: the slot is ours until released; hand out a view. */
static PyObject *
take(CoreObject *self, int64_t r, int64_t published)
{
    Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(r % self->slots) * self->stride);
    int64_t seq = load64(self, off), n = load64(self, off + 8);
    if (seq != r || published - r > (int64_t)self->slots)
        return bad_slot(self, "publisher: expected sample %lld in its slot, found %lld; "
                        "the segment is corrupted", r, seq);
    if (n < 0 || (uint64_t)n > self->slot_size)
        return bad_slot(self, "publisher: a sample claims %lld bytes in a %lld-byte slot; "
                        "the segment is corrupted", n, (long long)self->slot_size);
    SlotViewObject *v = PyObject_New(SlotViewObject, &SlotView_Type);
    if (!v)
        return NULL;
    v->core = (CoreObject *)Py_NewRef(self);
    v->ptr = self->base + off + PS_SLOT_HEADER;
    v->len = (Py_ssize_t)n;
    v->exports = v->done = 0;
    self->live++;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)v);
    Py_DECREF(v); /* the memoryview holds it */
    if (!mv)
        return NULL;
    self->cursor = r + 1;
    self->held[r % self->slots] = 1;
    self->received++;
    return new_sample(self, r, mv);
}

/* drop_oldest: copy the sample out under the seqlock; Py_None to retry. */
static PyObject *
copy_out(CoreObject *self, int64_t r, int64_t published)
{
    int64_t oldest = published - ((int64_t)self->slots - 1);
    if (r < oldest) {
        self->dropped += oldest - r;
        r = self->cursor = oldest;
        __atomic_store_n(AT(self, self->entry + PS_E_DROPPED, int64_t), self->dropped,
                         __ATOMIC_SEQ_CST);
    }
    Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(r % self->slots) * self->stride);
    int64_t seq = load64(self, off), n = load64(self, off + 8);
    if (seq != r) {
        if (seq == PS_WRITING || (seq > r && (seq - r) % (int64_t)self->slots == 0))
            return Py_NewRef(Py_None); /* overwritten since we read `published` */
        return bad_slot(self, "publisher: slot of sample %lld holds sample %lld; "
                        "the segment is corrupted", r, seq);
    }
    if (n < 0 || (uint64_t)n > self->slot_size)
        return bad_slot(self, "publisher: a sample claims %lld bytes in a %lld-byte slot; "
                        "the segment is corrupted", n, (long long)self->slot_size);
    PyObject *data = PyBytes_FromStringAndSize(self->base + off + PS_SLOT_HEADER, n);
    if (!data)
        return NULL;
    /* The seq_cst load orders the copy before it: if the seq is unchanged,
     * the publisher did not touch the slot meanwhile. */
    if (load64(self, off) != r) {
        Py_DECREF(data);
        return Py_NewRef(Py_None);
    }
    self->cursor = r + 1;
    self->received++;
    __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), r + 1, __ATOMIC_SEQ_CST);
    PyObject *mv = PyMemoryView_FromObject(data);
    Py_DECREF(data);
    return mv ? new_sample(self, r, mv) : NULL;
}

/* Spin until published > r: first holding the GIL (a prompt publisher
 * answers within a few microseconds and handing the GIL over costs about as
 * much), then without it, yielding now and then.  Returns the last value. */
static int64_t
spin_for(CoreObject *self, int64_t r)
{
    int64_t v;
    long long start = mono_ns();
    long long gil_ns = self->spin_ns < 4000 ? self->spin_ns : 4000;
    for (unsigned i = 1;; i++) {
        v = load64(self, PS_OFF_PUBLISHED);
        if (v > r || ((i & 31) == 0 && mono_ns() - start >= gil_ns))
            break;
        ip_cpu_relax();
    }
    if (v > r || self->spin_ns <= gil_ns)
        return v;
    Py_BEGIN_ALLOW_THREADS
    for (unsigned i = 1;; i++) {
        ip_cpu_relax();
        v = load64(self, PS_OFF_PUBLISHED);
        if (v > r)
            break;
        if ((i & 63) == 0) {
            /* The peer may be waiting for our CPU: let it run. */
            sched_yield();
            if (mono_ns() - start >= self->spin_ns)
                break;
        }
    }
    Py_END_ALLOW_THREADS
    return v;
}

static PyObject *
sub_recv(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (ip_parse_timeout_args("recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    long long deadline = -1;
    if (timeout != Py_None && ip_deadline_ns(timeout, &deadline) < 0)
        return NULL; /* a bad timeout is an error even when no wait is needed */
    for (;;) {
        if (closed_check(self, "subscriber") < 0)
            return NULL;
        int64_t r = self->cursor;
        int64_t published = load64(self, PS_OFF_PUBLISHED);
        if (published <= r) {
            if (spin_for(self, r) > r)
                continue;
            /* Python sleeps on the futex and raises Timeout/ChannelClosed. */
            PyObject *left = remaining(deadline);
            if (!left)
                return NULL;
            PyObject *res = PyObject_CallFunction(self->slow_wait, "LO", (long long)r, left);
            Py_DECREF(left);
            if (!res)
                return NULL;
            Py_DECREF(res);
            continue;
        }
        if (self->policy == PS_BLOCK)
            return take(self, r, published);
        PyObject *s = copy_out(self, r, published);
        if (s != Py_None)
            return s;
        Py_DECREF(s);
    }
}

/* Give sample `seq` back (block policy): advance the stored read position
 * past every released sample and wake the publisher if it waits. */
static void
sub_release(CoreObject *self, int64_t seq)
{
    if (self->policy != PS_BLOCK || self->closed || !self->has_view ||
        seq < self->read_pos || seq >= self->cursor)
        return;
    self->held[seq % self->slots] = 0;
    if (seq != self->read_pos)
        return; /* an older sample is still held */
    while (self->read_pos < self->cursor && !self->held[self->read_pos % self->slots])
        self->read_pos++;
    __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), self->read_pos, __ATOMIC_SEQ_CST);
    if (load64(self, PS_OFF_PUB_WAITING) != 0) {
        __atomic_fetch_add(AT(self, PS_OFF_SPACE, uint32_t), 1, __ATOMIC_SEQ_CST);
        ip_futex(AT(self, PS_OFF_SPACE, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
        uint32_t pid = __atomic_load_n(AT(self, PS_OFF_PUB_PID, uint32_t), __ATOMIC_RELAXED);
        ring(&self->pub_bell, &self->pub_bell_ino, AT(self, PS_OFF_PUB_BELL, ps_bell), pid, 0);
    }
}

/* -- both ------------------------------------------------------------------- */

static void
drop_view(CoreObject *self)
{
    if (self->has_view && self->live == 0) {
        self->has_view = 0;
        PyBuffer_Release(&self->view);
    }
}

static void
close_bells(CoreObject *self)
{
    if (self->bells) {
        for (uint32_t i = 0; i < self->max_subs; i++)
            if (self->bells[i] >= 0)
                close(self->bells[i]);
        PyMem_Free(self->bells);
        PyMem_Free(self->bell_inos);
        self->bells = NULL;
        self->bell_inos = NULL;
    }
    if (self->pub_bell >= 0) {
        close(self->pub_bell);
        self->pub_bell = -1;
    }
}

static PyObject *
core_close(CoreObject *self, PyObject *unused)
{
    if (!self->closed) {
        self->closed = 1;
        if (self->has_view && self->bells) {
            /* The publisher: subscribers drain, then see `closed`. */
            __atomic_store_n(AT(self, PS_OFF_CLOSED, uint32_t), 1, __ATOMIC_SEQ_CST);
            ip_futex(AT(self, PS_OFF_PUBLISHED, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
            ring_subscribers(self, 1);
        }
        close_bells(self);
        drop_view(self);
    }
    Py_RETURN_NONE;
}

static int
core_init(CoreObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "publisher", "max_subscribers", "slot_size", "slots",
                         "history", "spin", "slow_wait", "entry", "policy", "cursor", NULL};
    PyObject *buffer, *slow;
    int is_pub, policy = PS_BLOCK;
    unsigned int max_subs, slots, history;
    unsigned long long slot_size;
    double spin;
    Py_ssize_t entry = -1;
    long long cursor = 0;
    if (self->has_view || self->bells || self->held) {
        PyErr_SetString(PyExc_TypeError, "PubSubCore is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OpIKIIdO|$niL", kw, &buffer, &is_pub,
                                     &max_subs, &slot_size, &slots, &history, &spin, &slow,
                                     &entry, &policy, &cursor))
        return -1;
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow_wait must be callable");
        return -1;
    }
    if (max_subs < 1 || max_subs > 1024 || slot_size < 1 || slot_size > (1ULL << 30) ||
        slots < 2 || slots > (1u << 20) || history >= slots || !(spin >= 0 && spin <= 1) ||
        (policy != PS_BLOCK && policy != PS_DROP_OLDEST)) {
        PyErr_SetString(PyExc_ValueError, "PubSubCore: bad geometry");
        return -1;
    }
    uint64_t stride = PS_SLOT_HEADER + ((slot_size + 63) & ~63ULL);
    uint64_t slots_off = (PS_OFF_TABLE + (uint64_t)max_subs * PS_ENTRY + 63) & ~63ULL;
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    if ((uint64_t)self->view.len < slots_off + (uint64_t)slots * stride ||
        ((uintptr_t)self->view.buf & 7) ||
        (!is_pub && (entry < PS_OFF_TABLE || entry >= (Py_ssize_t)(PS_OFF_TABLE + max_subs * PS_ENTRY) ||
                     (entry - PS_OFF_TABLE) % PS_ENTRY))) {
        PyBuffer_Release(&self->view);
        PyErr_SetString(PyExc_ValueError, "PubSubCore: the segment does not match the geometry");
        return -1;
    }
    self->has_view = 1;
    self->base = self->view.buf;
    self->max_subs = max_subs;
    self->slots = slots;
    self->history = history;
    self->slot_size = slot_size;
    self->stride = stride;
    self->slots_off = slots_off;
    self->spin_ns = (long long)(spin * 1e9);
    self->slow_wait = Py_NewRef(slow);
    self->gen = -1;
    if (is_pub) {
        self->bells = PyMem_Malloc(max_subs * sizeof(int));
        self->bell_inos = PyMem_Calloc(max_subs, sizeof(uint64_t));
        if (!self->bells || !self->bell_inos) {
            PyErr_NoMemory();
            return -1;
        }
        for (uint32_t i = 0; i < max_subs; i++)
            self->bells[i] = -1;
    } else {
        self->held = PyMem_Calloc(slots, 1);
        if (!self->held) {
            PyErr_NoMemory();
            return -1;
        }
        self->entry = entry;
        self->policy = policy;
        self->cursor = self->read_pos = cursor;
    }
    return 0;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (self)
        self->pub_bell = -1;
    return (PyObject *)self;
}

static void
core_dealloc(CoreObject *self)
{
    close_bells(self);
    if (self->has_view)
        PyBuffer_Release(&self->view);
    PyMem_Free(self->held);
    Py_XDECREF(self->slow_wait);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
get_seq(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->bells ? self->seq : self->cursor);
}

static PyObject *
get_loaned(CoreObject *self, void *c)
{
    return PyBool_FromLong(self->loaned);
}

static PyObject *
get_received(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->received);
}

static PyObject *
get_dropped(CoreObject *self, void *c)
{
    return PyLong_FromLongLong(self->dropped);
}

static PyObject *
get_core_closed(CoreObject *self, void *c)
{
    return PyBool_FromLong(self->closed);
}

static PyGetSetDef core_getset[] = {
    {"seq", (getter)get_seq, NULL, "Publisher: samples published; subscriber: the next to read.", NULL},
    {"loaned", (getter)get_loaned, NULL, "A slot is lent out (publisher).", NULL},
    {"received", (getter)get_received, NULL, "Samples received (subscriber).", NULL},
    {"dropped", (getter)get_dropped, NULL, "Samples skipped by a lapped drop_oldest subscriber.", NULL},
    {"closed", (getter)get_core_closed, NULL, "True after close().", NULL},
    {NULL},
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef core_methods[] = {
    {"send", (PyCFunction)(void (*)(void))pub_send, FASTKW,
     "send(data, timeout=None)\n--\n\nPublish a copy of data (any contiguous buffer)."},
    {"claim", (PyCFunction)(void (*)(void))pub_claim, FASTKW,
     "claim(n, timeout=None)\n--\n\nWait for the next slot and mark it being written: (seq, offset)."},
    {"publish", (PyCFunction)(void (*)(void))pub_publish, METH_FASTCALL,
     "publish(seq, length)\n--\n\nPublish the claimed slot."},
    {"discard", (PyCFunction)pub_discard, METH_NOARGS,
     "discard()\n--\n\nGive the claimed slot back unpublished."},
    {"has_room", (PyCFunction)pub_has_room, METH_O,
     "has_room(seq)\n--\n\nTrue when no block subscriber still needs the slot of sample seq."},
    {"recv", (PyCFunction)(void (*)(void))sub_recv, FASTKW,
     "recv(timeout=None)\n--\n\nThe next sample (a Sample)."},
    {"close", (PyCFunction)core_close, METH_NOARGS,
     "close()\n--\n\nPublisher: mark the segment closed and wake subscribers.\n"
     "Both: stop using the segment (its buffer goes when no sample view is left)."},
    {NULL},
};

static PyTypeObject Core_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.PubSubCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "PubSubCore(buffer, publisher, max_subscribers, slot_size, slots, history, spin,\n"
              "           slow_wait, *, entry=-1, policy=0, cursor=0)\n--\n\n"
              "The send/recv hot path of one Publisher or Subscriber over a pub segment.",
    .tp_methods = core_methods,
    .tp_getset = core_getset,
    .tp_init = (initproc)core_init,
    .tp_new = core_new,
};

/* -- SlotView: the exporter behind a block sample's memoryview --------------- */

static int
slotview_getbuffer(SlotViewObject *self, Py_buffer *view, int flags)
{
    if (self->done) {
        PyErr_SetString(PyExc_BufferError, "this sample was already released");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->ptr, self->len, 1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void
slotview_releasebuffer(SlotViewObject *self, Py_buffer *view)
{
    self->exports--;
}

static void
slotview_dealloc(SlotViewObject *self)
{
    CoreObject *core = self->core;
    core->live--;
    if (core->closed)
        drop_view(core);
    Py_DECREF(core);
    PyObject_Free(self);
}

static PyBufferProcs slotview_as_buffer = {
    (getbufferproc)slotview_getbuffer,
    (releasebufferproc)slotview_releasebuffer,
};

static PyTypeObject SlotView_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc._native.PubSubSlotView",
    .tp_basicsize = sizeof(SlotViewObject),
    .tp_dealloc = (destructor)slotview_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A slot lent to a block subscriber (see Sample.buf).",
    .tp_as_buffer = &slotview_as_buffer,
};

/* -- Sample ------------------------------------------------------------------ */

static void
sample_release_impl(SampleObject *self)
{
    CoreObject *core = self->core;
    if (!core)
        return;
    self->core = NULL;
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *base = PyMemoryView_GET_BASE(self->buf);
    if (base && Py_IS_TYPE(base, &SlotView_Type))
        ((SlotViewObject *)base)->done = 1; /* no new exports of the slot */
    PyObject *r = PyObject_CallMethod(self->buf, "release", NULL);
    if (r)
        Py_DECREF(r);
    else
        PyErr_Clear(); /* an array over it is still alive; documented as invalid now */
    PyErr_Restore(et, ev, tb);
    sub_release(core, self->seq);
    Py_DECREF(core);
}

static PyObject *
sample_release(SampleObject *self, PyObject *unused)
{
    sample_release_impl(self);
    Py_RETURN_NONE;
}

static PyObject *
sample_exit(SampleObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sample_release_impl(self);
    Py_RETURN_NONE;
}

static PyObject *
sample_enter(SampleObject *self, PyObject *unused)
{
    return Py_NewRef(self);
}

static PyObject *
sample_tobytes(SampleObject *self, PyObject *unused)
{
    return PyObject_CallMethod(self->buf, "tobytes", NULL);
}

static PyObject *
sample_get_released(SampleObject *self, void *c)
{
    return PyBool_FromLong(self->core == NULL);
}

static Py_ssize_t
sample_len(SampleObject *self)
{
    return PyObject_Length(self->buf);
}

static PyObject *
sample_getitem(SampleObject *self, PyObject *key)
{
    return PyObject_GetItem(self->buf, key);
}

static PyObject *
sample_richcompare(SampleObject *self, PyObject *other, int op)
{
    if ((op == Py_EQ || op == Py_NE) &&
        (PyBytes_Check(other) || PyByteArray_Check(other) || PyMemoryView_Check(other)))
        return PyObject_RichCompare(self->buf, other, op);
    Py_RETURN_NOTIMPLEMENTED;
}

static PyObject *
sample_repr(SampleObject *self)
{
    if (!self->core)
        return PyUnicode_FromFormat("<Sample #%lld released>", (long long)self->seq);
    return PyUnicode_FromFormat("<Sample #%lld %zd bytes>", (long long)self->seq,
                                PyObject_Length(self->buf));
}

static void
sample_dealloc(SampleObject *self)
{
    /* Dropping a sample releases it, as the GC would the Python one. */
    sample_release_impl(self);
    Py_XDECREF(self->buf);
    PyObject_Free(self);
}

static PyMemberDef sample_members[] = {
    {"seq", T_LONGLONG, offsetof(SampleObject, seq), READONLY, "The sample's sequence number."},
    {"buf", T_OBJECT, offsetof(SampleObject, buf), READONLY,
     "A read-only memoryview of the sample, valid until released."},
    {NULL},
};

static PyGetSetDef sample_getset[] = {
    {"released", (getter)sample_get_released, NULL, "True after release().", NULL},
    {NULL},
};

static PyMethodDef sample_methods[] = {
    {"release", (PyCFunction)sample_release, METH_NOARGS,
     "release()\n--\n\nGive the slot back; buf is invalid afterwards (twice is harmless)."},
    {"tobytes", (PyCFunction)sample_tobytes, METH_NOARGS, "tobytes()\n--\n\nA copy."},
    {"__bytes__", (PyCFunction)sample_tobytes, METH_NOARGS, NULL},
    {"__enter__", (PyCFunction)sample_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))sample_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyMappingMethods sample_as_mapping = {
    (lenfunc)sample_len,
    (binaryfunc)sample_getitem,
    NULL,
};

static PyTypeObject Sample_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "interproc.shm.Sample",
    .tp_basicsize = sizeof(SampleObject),
    .tp_dealloc = (destructor)sample_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A received sample: `buf` is a read-only memoryview, valid until released.\n\n"
              "Use it as a context manager or call release(); for block subscribers\n"
              "the publisher cannot reuse the slot until then.",
    .tp_repr = (reprfunc)sample_repr,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_as_mapping = &sample_as_mapping,
    .tp_richcompare = (richcmpfunc)sample_richcompare,
    .tp_methods = sample_methods,
    .tp_members = sample_members,
    .tp_getset = sample_getset,
};

/* -- module glue ---------------------------------------------------------------- */

int
ip_pubsub_init(PyObject *module)
{
    if (PyType_Ready(&Core_Type) < 0 || PyType_Ready(&Sample_Type) < 0 ||
        PyType_Ready(&SlotView_Type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "PubSubCore", (PyObject *)&Core_Type) < 0 ||
        PyModule_AddObjectRef(module, "PubSubSample", (PyObject *)&Sample_Type) < 0)
        return -1;
    struct { const char *name; long value; } k[] = {
        {"PUBSUB_OFF_PUBLISHED", PS_OFF_PUBLISHED}, {"PUBSUB_OFF_SUB_WAITERS", PS_OFF_SUB_WAITERS},
        {"PUBSUB_OFF_CLOSED", PS_OFF_CLOSED}, {"PUBSUB_OFF_PUB_PID", PS_OFF_PUB_PID},
        {"PUBSUB_OFF_HWM", PS_OFF_HWM}, {"PUBSUB_OFF_SPACE", PS_OFF_SPACE},
        {"PUBSUB_OFF_PUB_WAITING", PS_OFF_PUB_WAITING}, {"PUBSUB_OFF_GEN", PS_OFF_GEN},
        {"PUBSUB_OFF_PUB_BELL", PS_OFF_PUB_BELL}, {"PUBSUB_OFF_TABLE", PS_OFF_TABLE},
        {"PUBSUB_ENTRY", PS_ENTRY}, {"PUBSUB_E_WORD", PS_E_WORD}, {"PUBSUB_E_PID", PS_E_PID},
        {"PUBSUB_E_POLICY", PS_E_POLICY}, {"PUBSUB_E_START", PS_E_START},
        {"PUBSUB_E_READ", PS_E_READ}, {"PUBSUB_E_DROPPED", PS_E_DROPPED},
        {"PUBSUB_E_RECEIVED", PS_E_RECEIVED}, {"PUBSUB_E_BELL", PS_E_BELL},
        {"PUBSUB_SLOT_HEADER", PS_SLOT_HEADER}, {"PUBSUB_WRITING", PS_WRITING},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (PyModule_AddIntConstant(module, k[i].name, k[i].value) < 0)
            return -1;
    return 0;
}
