/* pub/sub: the publisher's half of the C core (claim, publish, send).
 * See pubsub_core.c for the whole picture. */
#include "pubsub.h"

#include <limits.h>
#include <string.h>

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
    if (ps_closed_check(self, "publisher") < 0)
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
        /* No spinning for a caller that does not want to wait (asyncio). */
        long long spin_until = deadline >= 0 && mono_ns() >= deadline ? 0 : mono_ns() + self->spin_ns;
        for (unsigned i = 1; (r = room(self, seq)) == 0; i++) {
            ip_cpu_relax();
            if ((i & 63) == 0 && mono_ns() >= spin_until) {
                /* Python sleeps on the futex, reaps dead subscribers and
                 * raises Timeout; we look again when it returns. */
                PyObject *left = ps_remaining(deadline);
                if (!left)
                    return -1;
                PyObject *res = PyObject_CallFunction(self->slow_wait, "LO", (long long)seq, left);
                Py_DECREF(left);
                if (!res)
                    return -1;
                Py_DECREF(res);
                if (ps_closed_check(self, "publisher") < 0)
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
     * copied the old sample sees the mark change and discards its copy.  A
     * seqlock writer: the mark, then a store-store barrier (free on x86). */
    __atomic_store_n(AT(self, off, int64_t), (int64_t)PS_WRITING, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    self->loaned = 1;
    return off;
}

static void
publish(CoreObject *self, Py_ssize_t off, uint64_t n)
{
    int64_t *hdr = AT(self, off, int64_t);
    int64_t seq = self->seq;
    /* Release stores: the payload before the header before `published`;
     * readers load them with acquire (seq_cst) loads. */
    __atomic_store_n(&hdr[1], (int64_t)n, __ATOMIC_RELEASE);
    __atomic_store_n(&hdr[0], seq, __ATOMIC_RELEASE);
    /* Store, then load the waiter count: Dekker with the subscriber's
     * increment-then-recheck, so a sleeper is never missed.  That needs a
     * StoreLoad barrier; as on shm:// rings it is asymmetric when this
     * process is registered for membarrier: the sleeper (slow path) runs
     * heavy_fence(), which fences our CPU, and we use a compiler barrier. */
    if (ip_asym_ok == 1) {
        __atomic_store_n(AT(self, PS_OFF_PUBLISHED, int64_t), seq + 1, __ATOMIC_RELEASE);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    } else {
        __atomic_store_n(AT(self, PS_OFF_PUBLISHED, int64_t), seq + 1, __ATOMIC_SEQ_CST);
    }
    if (load64(self, PS_OFF_SUB_WAITERS) != 0) {
        ip_futex(AT(self, PS_OFF_PUBLISHED, uint32_t), FUTEX_WAKE, INT_MAX, NULL);
        ps_ring_subscribers(self, 0);
    }
    self->seq = seq + 1;
    self->loaned = 0;
}

PyObject *
ps_pub_send(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
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

PyObject *
ps_pub_claim(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
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

PyObject *
ps_pub_publish(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long seq, n;
    if (nargs != 2 || (seq = PyLong_AsLongLong(args[0])) == -1 ||
        (n = PyLong_AsLongLong(args[1])) == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "publish(seq, length) takes two ints");
        return NULL;
    }
    if (ps_closed_check(self, "publisher") < 0)
        return NULL;
    if (!self->loaned || seq != self->seq || n < 0 || (uint64_t)n > self->slot_size) {
        PyErr_SetString(PyExc_ValueError, "this loan was already published or discarded");
        return NULL;
    }
    publish(self, (Py_ssize_t)(self->slots_off + (uint64_t)(seq % self->slots) * self->stride),
            (uint64_t)n);
    Py_RETURN_NONE;
}

PyObject *
ps_pub_discard(CoreObject *self, PyObject *unused)
{
    self->loaned = 0;
    Py_RETURN_NONE;
}

int
ps_pub_room_now(CoreObject *self)
{
    self->gen = -1; /* a fresh scan: a waiter must not trust the cache */
    return room(self, self->seq);
}

PyObject *
ps_pub_has_room(CoreObject *self, PyObject *arg)
{
    long long seq = PyLong_AsLongLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    if (ps_closed_check(self, "publisher") < 0)
        return NULL;
    self->gen = -1;
    int r = room(self, (int64_t)seq);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

