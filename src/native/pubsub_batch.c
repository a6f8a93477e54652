/* pub/sub: recv_available(max), the batch receive of a drop_oldest
 * subscriber.  One call copies every sample already published (up to max)
 * into a list of bytes and never waits: a reader that fans a stream out to a
 * Python callback pays one C call per batch instead of one per sample, and
 * reads the shared `published` word once per batch instead of once per
 * sample (that word's cache line bounces between the publisher's CPU and
 * every reader's).  Waiting stays with recv(), so a reader loops:
 * recv_available(), and when it is empty, recv(timeout=...).
 *
 * The copy rules are copy_out()'s in pubsub_sub.c: a lapped reader skips to
 * the oldest sample still in the ring (counted in dropped), and a sample is
 * kept only if its slot still holds it after the copy (the slot's sequence
 * word is the seqlock).  A batch is contiguous: its last sample is number
 * `seq - 1` (the core's seq after the call), the one before it `seq - 2`...
 *
 * recv_available((max, prefix)) also decodes: a sample that starts with the
 * bytes `prefix` comes as the str of the UTF-8 after it (a DDE text value),
 * any other (or one that is not UTF-8) as bytes.  A fan-out reader then
 * builds one object per sample instead of three (bytes, slice, str).  The
 * decoder reads the slot like the copy does, so the seqlock check after it
 * discards a torn read the same way. */
#include "pubsub.h"

#include <string.h>

PyObject *
ps_sub_recv_available(CoreObject *self, PyObject *arg)
{
    const char *prefix = NULL;
    Py_ssize_t plen = 0;
    if (PyTuple_Check(arg)) {
        PyObject *pre;
        if (PyTuple_GET_SIZE(arg) != 2 || !PyBytes_Check(pre = PyTuple_GET_ITEM(arg, 1))) {
            PyErr_SetString(PyExc_TypeError, "recv_available((max, prefix)): an int and a bytes");
            return NULL;
        }
        prefix = PyBytes_AS_STRING(pre);
        plen = PyBytes_GET_SIZE(pre);
        arg = PyTuple_GET_ITEM(arg, 0);
    }
    Py_ssize_t max = PyLong_AsSsize_t(arg);
    if (max == -1 && PyErr_Occurred())
        return NULL;
    if (max < 1) {
        PyErr_Format(PyExc_ValueError, "recv_available(max): max must be at least 1, not %zd", max);
        return NULL;
    }
    if (ps_closed_check(self, "subscriber") < 0)
        return NULL;
    if (self->policy != PS_DROP_OLDEST) {
        PyErr_SetString(PyExc_ValueError, "recv_available() is for drop_oldest subscribers (block samples are views)");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    int64_t published = load64(self, PS_OFF_PUBLISHED);
    int64_t r = self->cursor;
    while (r < published && PyList_GET_SIZE(out) < max) {
        int64_t oldest = published - ((int64_t)self->slots - 1);
        if (r < oldest) {
            self->dropped += oldest - r;
            r = oldest;
            __atomic_store_n(AT(self, self->entry + PS_E_DROPPED, int64_t), self->dropped, __ATOMIC_SEQ_CST);
        }
        Py_ssize_t off = (Py_ssize_t)(self->slots_off + (uint64_t)(r % self->slots) * self->stride);
        int64_t seq = load64(self, off), n = load64(self, off + 8);
        if (seq != r) {
            if (seq == PS_WRITING || (seq > r && (seq - r) % (int64_t)self->slots == 0)) {
                /* Lapped meanwhile.  A batch stays contiguous (the caller numbers its samples
                 * back from `seq`): return what we have; the skip comes first next time. */
                if (PyList_GET_SIZE(out) > 0)
                    break;
                published = load64(self, PS_OFF_PUBLISHED);
                continue;
            }
            Py_DECREF(out);
            PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError),
                         "publisher: slot of sample %lld holds sample %lld; the segment is corrupted",
                         (long long)r, (long long)seq);
            return NULL;
        }
        if (n < 0 || (uint64_t)n > self->slot_size) {
            Py_DECREF(out);
            PyErr_Format(ip_error(IP_ERR_PROTOCOL, PyExc_ValueError),
                         "publisher: a sample claims %lld bytes in a %lld-byte slot; the segment is corrupted",
                         (long long)n, (long long)self->slot_size);
            return NULL;
        }
        const char *src = self->base + off + PS_SLOT_HEADER;
        PyObject *data = NULL;
        if (prefix && n >= plen && memcmp(src, prefix, (size_t)plen) == 0) {
            data = PyUnicode_DecodeUTF8(src + plen, n - plen, NULL);
            if (!data)
                PyErr_Clear(); /* not UTF-8 (or torn): the bytes, as without a prefix */
        }
        if (!data)
            data = PyBytes_FromStringAndSize(src, n);
        if (!data) {
            Py_DECREF(out);
            return NULL;
        }
        if (load64(self, off) != r) { /* overwritten while we copied: as above */
            Py_DECREF(data);
            if (PyList_GET_SIZE(out) > 0)
                break;
            published = load64(self, PS_OFF_PUBLISHED);
            continue;
        }
        int rc = PyList_Append(out, data);
        Py_DECREF(data);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
        r++;
        self->received++;
    }
    if (r != self->cursor) {
        self->cursor = r;
        __atomic_store_n(AT(self, self->entry + PS_E_READ, int64_t), r, __ATOMIC_RELEASE);
    }
    return out;
}
