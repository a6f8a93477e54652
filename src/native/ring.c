/* The shm:// channel's records: send/recv/recv_into/recv_view and the
 * in-order release of loans (the object itself: ring_obj.c).  Layout and
 * invariants: ring.h. */
#include "ring.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>



static PyObject *
protocol_error(ChanObject *self, const char *what)
{
    self->broken = 1;
    PyErr_Format(exc(err_protocol, PyExc_ValueError),
                 "shm channel: corrupted ring (%s); the peer or another process "
                 "wrote garbage into the segment", what);
    return NULL;
}

/* -- send ------------------------------------------------------------------ */

static PyObject *
closed_error(ChanObject *self, int sending)
{
    if (self->closed)
        PyErr_SetString(exc(err_closed, PyExc_OSError), "shm channel is closed");
    else if (self->peer_dead && !__atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE))
        PyErr_SetString(exc(err_closed, PyExc_OSError),
                        "shm channel: the peer process died");
    else
        PyErr_SetString(exc(err_closed, PyExc_OSError),
                        sending ? "shm channel: the peer closed its end"
                                : "shm channel: the peer closed the channel");
    return NULL;
}

static int
check_usable(ChanObject *self, int sending)
{
    if (self->closed || (sending && __atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE))) {
        closed_error(self, sending);
        return -1;
    }
    if (self->broken) {
        PyErr_SetString(exc(err_protocol, PyExc_ValueError),
                        "shm channel: the ring is corrupted (an earlier ProtocolError)");
        return -1;
    }
    return 0;
}


PyObject *
chan_send(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data, *timeout;
    if (parse_args("send", args, nargs, kwnames, 1, &data, &timeout) < 0)
        return NULL;
    if (check_usable(self, 1) < 0)
        return NULL;
    Py_buffer b;
    int strided = 0;
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0) {
        /* A non-contiguous array (arr[::3]) is gathered straight into the
         * ring: still one copy. */
        if (PyObject_CheckBuffer(data)) {
            PyErr_Clear();
            if (PyObject_GetBuffer(data, &b, PyBUF_FULL_RO) < 0)
                return NULL;
            strided = 1;
        }
    }
    if (!strided && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "send() needs a bytes-like object, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    PyObject *result = NULL;
    uint64_t len = (uint64_t)b.len;
    if (len > max_message(self)) {
        PyErr_Format(exc(err_too_large, PyExc_ValueError),
                     "shm channel: a %llu-byte message does not fit a %llu-byte ring "
                     "(the limit is %llu bytes); connect with ?capacity= at least %llu",
                     (unsigned long long)len, (unsigned long long)self->cap,
                     (unsigned long long)max_message(self),
                     (unsigned long long)(2 * (len + 8)));
        /* Refused before claiming the send side: returning here must not
           clear the claim of another thread that is sending right now. */
        PyBuffer_Release(&b);
        return NULL;
    }
    if (self->busy_send) {
        PyErr_SetString(PyExc_ValueError,
                        "another thread is already sending on this shm channel "
                        "(each ring has one producer)");
        PyBuffer_Release(&b);
        return NULL;
    }
    /* From here on this call owns the send side: every exit goes through
       `done`, which clears busy_send. */
    self->busy_send = 1;
    uint64_t need = tx_need(self, len);
    uint64_t used = self->head - self->tail_seen;
    if (self->cap - used < need) {
        self->tail_seen = __atomic_load_n(&self->tx->tail, __ATOMIC_ACQUIRE);
        used = self->head - self->tail_seen;
        if (used > self->cap) {
            protocol_error(self, "tail moved outside the ring");
            goto done;
        }
        if (self->cap - used < need) {
            long long deadline;
            if (deadline_ns(timeout, &deadline) < 0)
                goto done;
            for (;;) {
                int r = ip_chan_wait(self, 1, need, deadline);
                if (r < 0)
                    break;
                self->tail_seen = __atomic_load_n(&self->tx->tail, __ATOMIC_ACQUIRE);
                used = self->head - self->tail_seen;
                if (used > self->cap) {
                    protocol_error(self, "tail moved outside the ring");
                    break;
                }
                if (self->cap - used >= need) {
                    r = 2;
                } else if (self->closed || self->peer_dead ||
                           __atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE)) {
                    closed_error(self, 1);
                    break;
                } else if (r == 0) {
                    PyErr_Format(exc(err_timeout, PyExc_TimeoutError),
                                 "shm channel: send timed out: the ring is full "
                                 "(the peer is not reading)");
                    break;
                }
                if (r == 2)
                    break;
            }
            if (PyErr_Occurred())
                goto done;
        }
    }
    uint64_t pos = self->head % self->cap;
    if (8 + align8(len) > self->cap - pos) {
        uint32_t *pad = (uint32_t *)(self->txdata + pos);
        pad[0] = (uint32_t)(self->cap - pos - 8);
        pad[1] = TAG_PAD;
        self->head += self->cap - pos;
        pos = 0;
    }
    char *rec = self->txdata + pos;
    if (strided) {
        if (PyBuffer_ToContiguous(rec + 8, &b, (Py_ssize_t)len, 'C') < 0)
            goto done; /* nothing published: the record is not committed */
    } else if (len >= (1 << 18)) {
        Py_BEGIN_ALLOW_THREADS
        memcpy(rec + 8, b.buf, len);
        Py_END_ALLOW_THREADS
    } else {
        memcpy(rec + 8, b.buf, len);
    }
    ((uint32_t *)rec)[0] = (uint32_t)len;
    ((uint32_t *)rec)[1] = TAG_MSG;
    self->head += 8 + align8(len);
    publish(self, &self->tx->head, self->head, &self->tx->data_wait, &self->tx->data_seq);
    result = Py_NewRef(Py_None);
done:
    self->busy_send = 0;
    PyBuffer_Release(&b);
    if (self->closed)
        chan_drop_view(self);
    return result;
}

/* -- recv ------------------------------------------------------------------ */

static void
publish_tail(ChanObject *self, uint64_t tail)
{
    publish(self, &self->rx->tail, tail, &self->rx->space_wait, &self->rx->space_seq);
}

/* Mark the bytes up to `end` consumed: at once, or after earlier loans. */
static void
consume(ChanObject *self, uint64_t end)
{
    if (self->loan_first == self->loan_next) {
        publish_tail(self, end);
        return;
    }
    uint64_t last = (self->loan_next - 1) % NLOANS;
    if (self->loan_done[last]) {
        self->loan_end[last] = end; /* merge with a finished entry */
        return;
    }
    /* Never full here: recv_view refuses to start a loan when it would be. */
    self->loan_end[self->loan_next % NLOANS] = end;
    self->loan_done[self->loan_next % NLOANS] = 1;
    self->loan_next++;
}

void
loan_finish(ChanObject *self, uint64_t seq)
{
    self->loan_done[seq % NLOANS] = 1;
    uint64_t tail = 0;
    int moved = 0;
    while (self->loan_first != self->loan_next && self->loan_done[self->loan_first % NLOANS]) {
        tail = self->loan_end[self->loan_first % NLOANS];
        self->loan_first++;
        moved = 1;
    }
    if (moved && self->has_view && !self->closed)
        publish_tail(self, tail);
}

void
chan_drop_view(ChanObject *self)
{
    if (self->has_view && self->live_loans == 0 && !self->busy_send && !self->busy_recv &&
        !self->waiters) {
        self->has_view = 0;
        PyBuffer_Release(&self->view);
    }
}

/* Wait for and validate the next message; sets ptr, len and the record end. */
static int
next_message(ChanObject *self, PyObject *timeout, char **ptr, uint64_t *len, uint64_t *end)
{
    long long deadline = -2; /* computed lazily: the fast path never needs it */
    for (;;) {
        uint64_t avail = self->head_seen - self->rpos;
        if (avail == 0) {
            self->head_seen = __atomic_load_n(&self->rx->head, __ATOMIC_ACQUIRE);
            avail = self->head_seen - self->rpos;
        }
        if (avail > self->cap) {
            protocol_error(self, "head moved outside the ring");
            return -1;
        }
        if (avail == 0) {
            if (self->closed || self->peer_dead ||
                __atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE)) {
                /* Closed or dead: deliver what was published before that. */
                self->head_seen = __atomic_load_n(&self->rx->head, __ATOMIC_ACQUIRE);
                if (self->head_seen != self->rpos)
                    continue;
                closed_error(self, 0);
                return -1;
            }
            if (deadline == -2 && deadline_ns(timeout, &deadline) < 0)
                return -1;
            int r = ip_chan_wait(self, 0, 0, deadline);
            if (r < 0)
                return -1;
            if (r == 0 && __atomic_load_n(&self->rx->head, __ATOMIC_ACQUIRE) == self->rpos &&
                !__atomic_load_n(self->peer_closed, __ATOMIC_ACQUIRE) && !self->peer_dead &&
                !ip_bell_rearm(self)) { /* a recv that finds nothing re-arms the doorbell */
                PyErr_SetString(exc(err_timeout, PyExc_TimeoutError),
                                "shm channel: recv timed out");
                return -1;
            }
            continue;
        }
        uint64_t pos = self->rpos % self->cap;
        if (avail < 8 || (avail & 7)) {
            protocol_error(self, "published a partial record");
            return -1;
        }
        /* Read the header once: a hostile writer may change it under us. */
        uint32_t rlen = __atomic_load_n((uint32_t *)(self->rxdata + pos), __ATOMIC_RELAXED);
        uint32_t tag = __atomic_load_n((uint32_t *)(self->rxdata + pos) + 1, __ATOMIC_RELAXED);
        if (tag == TAG_PAD) {
            uint64_t skip = self->cap - pos;
            if (skip > avail) {
                protocol_error(self, "padding past the published bytes");
                return -1;
            }
            self->rpos += skip;
            continue;
        }
        if (tag != TAG_MSG) {
            protocol_error(self, "unknown record tag");
            return -1;
        }
        uint64_t rec = 8 + align8(rlen);
        if (rec > self->cap - pos || rec > avail) {
            protocol_error(self, "record length past the published bytes");
            return -1;
        }
        *ptr = self->rxdata + pos + 8;
        *len = rlen;
        *end = self->rpos + rec;
        return 0;
    }
}

static int
begin_recv(ChanObject *self)
{
    if (check_usable(self, 0) < 0)
        return -1;
    if (self->busy_recv) {
        PyErr_SetString(PyExc_ValueError,
                        "another thread is already receiving on this shm channel "
                        "(each ring has one consumer)");
        return -1;
    }
    self->busy_recv = 1;
    return 0;
}

static void
end_recv(ChanObject *self)
{
    self->busy_recv = 0;
    if (self->closed)
        chan_drop_view(self);
}

PyObject *
chan_recv(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (parse_args("recv", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    if (begin_recv(self) < 0)
        return NULL;
    char *ptr;
    uint64_t len, end;
    PyObject *result = NULL;
    if (next_message(self, timeout, &ptr, &len, &end) == 0) {
        result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
        if (result) {
            if (len >= (1 << 18)) {
                Py_BEGIN_ALLOW_THREADS
                memcpy(PyBytes_AS_STRING(result), ptr, len);
                Py_END_ALLOW_THREADS
            } else {
                memcpy(PyBytes_AS_STRING(result), ptr, len);
            }
            self->rpos = end;
            consume(self, end);
        }
    }
    end_recv(self);
    return result;
}

PyObject *
chan_recv_into(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *target, *timeout;
    if (parse_args("recv_into", args, nargs, kwnames, 1, &target, &timeout) < 0)
        return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(target, &b, PyBUF_WRITABLE) < 0)
        return NULL;
    PyObject *result = NULL;
    if (begin_recv(self) < 0)
        goto out;
    char *ptr;
    uint64_t len, end;
    if (next_message(self, timeout, &ptr, &len, &end) == 0) {
        if (len > (uint64_t)b.len) {
            /* Left in the ring: the caller may retry with a larger buffer. */
            PyErr_Format(exc(err_too_large, PyExc_ValueError),
                         "shm channel: the next message has %llu bytes, the buffer only %zd "
                         "(the message stays queued)", (unsigned long long)len, b.len);
        } else {
            if (len >= (1 << 18)) {
                Py_BEGIN_ALLOW_THREADS
                memcpy(b.buf, ptr, len);
                Py_END_ALLOW_THREADS
            } else {
                memcpy(b.buf, ptr, len);
            }
            self->rpos = end;
            consume(self, end);
            result = PyLong_FromUnsignedLongLong(len);
        }
    }
    end_recv(self);
out:
    PyBuffer_Release(&b);
    return result;
}

PyObject *
chan_recv_view(ChanObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (parse_args("recv_view", args, nargs, kwnames, 0, NULL, &timeout) < 0)
        return NULL;
    if (self->loan_next - self->loan_first >= NLOANS - 1) {
        PyErr_Format(PyExc_ValueError,
                     "shm channel: %d views from recv_view() are still held; release some",
                     NLOANS - 1);
        return NULL;
    }
    if (begin_recv(self) < 0)
        return NULL;
    char *ptr;
    uint64_t len, end;
    PyObject *result = NULL;
    if (next_message(self, timeout, &ptr, &len, &end) == 0) {
        LoanObject *loan = PyObject_New(LoanObject, &ip_loan_type);
        if (loan) {
            loan->chan = (ChanObject *)Py_NewRef(self);
            loan->ptr = ptr;
            loan->len = (Py_ssize_t)len;
            loan->exports = 0;
            loan->done = 0;
            loan->seq = self->loan_next;
            self->loan_end[self->loan_next % NLOANS] = end;
            self->loan_done[self->loan_next % NLOANS] = 0;
            self->loan_next++;
            self->live_loans++;
            self->rpos = end;
            result = PyMemoryView_FromObject((PyObject *)loan);
            Py_DECREF(loan); /* the memoryview holds it; released with it */
        }
    }
    end_recv(self);
    return result;
}
