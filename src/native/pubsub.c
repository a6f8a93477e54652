/* Hot path of interproc.shm.Publisher / Subscriber (see interproc/_pubsub/ for the layout).
 *
 * Each function folds what would be several Python-level atomic calls into
 * one: publishing a sample, spinning for the next one, checking a slot and
 * releasing a sample.  Offsets come from Python (computed from the geometry
 * validated at open) and are bounds-checked here like every other (buffer,
 * offset) pair; values read from the segment are returned to Python, which
 * decides whether they make sense.
 */
#include "native.h"

#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void
wake_all(void *word)
{
    ip_futex(word, FUTEX_WAKE, INT_MAX, NULL);
}

/* pubsub_publish(buffer, slot, seq, length, published, waiters) */
static PyObject *
pubsub_publish(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t slot, published_off, waiters_off;
    long long seq, length;
    if (!PyArg_ParseTuple(args, "w*nLLnn", &view, &slot, &seq, &length, &published_off, &waiters_off))
        return NULL;
    PyObject *result = NULL;
    int64_t *hdr = ip_locate(&view, slot, 16, 8);
    int64_t *published = ip_locate(&view, published_off, 8, 8);
    int64_t *waiters = ip_locate(&view, waiters_off, 8, 8);
    if (hdr && published && waiters) {
        __atomic_store_n(&hdr[1], (int64_t)length, __ATOMIC_SEQ_CST);
        __atomic_store_n(&hdr[0], (int64_t)seq, __ATOMIC_SEQ_CST);
        /* seq_cst store, then the load of the waiter count: pairs with the
         * subscriber's increment-then-recheck, so a sleeper is never missed. */
        __atomic_store_n(published, (int64_t)seq + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(waiters, __ATOMIC_SEQ_CST) != 0)
            wake_all(published); /* the low 32 bits are the futex word (little-endian) */
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    return result;
}

/* pubsub_spin(buffer, offset, after, seconds) -> value
 * Spin (GIL released) until the int64 at offset is > after, for at most
 * `seconds`; returns the last value read. */
static PyObject *
pubsub_spin(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    long long after;
    double seconds;
    if (!PyArg_ParseTuple(args, "w*nLd", &view, &offset, &after, &seconds))
        return NULL;
    PyObject *result = NULL;
    int64_t *word = ip_locate(&view, offset, 8, 8);
    if (word) {
        int64_t v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        if (v <= after && seconds > 0) {
            long long budget = (long long)(seconds * 1e9);
            Py_BEGIN_ALLOW_THREADS
            long long start = mono_ns();
            for (unsigned i = 1;; i++) {
                ip_cpu_relax();
                v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
                if (v > after)
                    break;
                if ((i & 63) == 0) {
                    /* The scheduler likes to put a woken process on its
                     * waker's CPU.  If the peer shares ours, spinning only
                     * delays it by the whole budget: yield so it can run. */
                    sched_yield();
                    if (mono_ns() - start >= budget)
                        break;
                }
            }
            Py_END_ALLOW_THREADS
        }
        result = PyLong_FromLongLong(v);
    }
    PyBuffer_Release(&view);
    return result;
}

/* pubsub_slot(buffer, slot) -> (seq, length): both read with seq_cst loads. */
static PyObject *
pubsub_slot(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t slot;
    if (!PyArg_ParseTuple(args, "w*n", &view, &slot))
        return NULL;
    PyObject *result = NULL;
    int64_t *hdr = ip_locate(&view, slot, 16, 8);
    if (hdr) {
        int64_t seq = __atomic_load_n(&hdr[0], __ATOMIC_SEQ_CST);
        int64_t len = __atomic_load_n(&hdr[1], __ATOMIC_SEQ_CST);
        result = Py_BuildValue("(LL)", (long long)seq, (long long)len);
    }
    PyBuffer_Release(&view);
    return result;
}

/* pubsub_release(buffer, read_off, value, pub_waiting_off, space_off)
 * Store a subscriber's oldest unreleased sample; wake a waiting publisher. */
static PyObject *
pubsub_release(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t read_off, waiting_off, space_off;
    long long value;
    if (!PyArg_ParseTuple(args, "w*nLnn", &view, &read_off, &value, &waiting_off, &space_off))
        return NULL;
    PyObject *result = NULL;
    int64_t *read = ip_locate(&view, read_off, 8, 8);
    int64_t *waiting = ip_locate(&view, waiting_off, 8, 8);
    uint32_t *space = ip_locate(&view, space_off, 4, 4);
    if (read && waiting && space) {
        __atomic_store_n(read, (int64_t)value, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(waiting, __ATOMIC_SEQ_CST) != 0) {
            __atomic_fetch_add(space, 1, __ATOMIC_SEQ_CST);
            wake_all(space);
        }
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef ip_pubsub_methods[] = {
    {"pubsub_publish", pubsub_publish, METH_VARARGS,
     "pubsub_publish($module, buffer, slot, seq, length, published, waiters)\n--\n\n"
     "Publish sample `seq`: store its length and seq in the slot header, then\n"
     "`published = seq + 1`, and wake sleeping subscribers if any."},
    {"pubsub_spin", pubsub_spin, METH_VARARGS,
     "pubsub_spin($module, buffer, offset, after, seconds)\n--\n\n"
     "Spin (GIL released) up to `seconds` until the int64 at `offset` is > `after`;\n"
     "returns the last value read."},
    {"pubsub_slot", pubsub_slot, METH_VARARGS,
     "pubsub_slot($module, buffer, slot)\n--\n\n"
     "Read a slot header: (seq, length)."},
    {"pubsub_release", pubsub_release, METH_VARARGS,
     "pubsub_release($module, buffer, read_off, value, pub_waiting, space)\n--\n\n"
     "Store a subscriber's read position and wake the publisher if it waits."},
    {NULL, NULL, 0, NULL},
};
