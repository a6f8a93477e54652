/* futex wait / wake on a 32-bit word in shared memory (see ip_futex). */
#include "native.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static PyObject *
futex_wait(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "expected", "timeout", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long expected;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*nk|O", kw, &view, &offset,
                                     &expected, &timeout))
        return NULL;

    PyObject *result = NULL;
    int has_deadline;
    struct timespec deadline, left;
    uint32_t *word = ip_locate(&view, offset, 4, 4);
    if (word == NULL || ip_deadline(timeout, &has_deadline, &deadline) < 0)
        goto done;
    if (expected > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "expected must fit in 32 bits");
        goto done;
    }
    if (has_deadline && !ip_remaining(&deadline, &left)) {
        /* timeout=0: report whether the word already moved on. */
        result = PyBool_FromLong(__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected);
        goto done;
    }

    long rc;
    int err;
    Py_BEGIN_ALLOW_THREADS
    rc = ip_futex(word, FUTEX_WAIT, (uint32_t)expected, has_deadline ? &left : NULL);
    err = errno;
    Py_END_ALLOW_THREADS

    if (rc == 0 || err == EAGAIN) {
        result = Py_NewRef(Py_True);
    } else if (err == ETIMEDOUT) {
        result = Py_NewRef(Py_False);
    } else if (err == EINTR) {
        /* A signal arrived: let Python run its handler (KeyboardInterrupt
         * propagates from here); otherwise report a spurious wake-up and let
         * the caller re-check its condition and deadline. */
        if (PyErr_CheckSignals() == 0)
            result = Py_NewRef(Py_True);
    } else {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
futex_wake(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "count", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    int count = INT_MAX;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*n|i", kw, &view, &offset,
                                     &count))
        return NULL;
    PyObject *result = NULL;
    uint32_t *word = ip_locate(&view, offset, 4, 4);
    if (word != NULL) {
        if (count < 1) {
            PyErr_SetString(PyExc_ValueError, "count must be >= 1");
        } else {
            long rc = ip_futex(word, FUTEX_WAKE, (uint32_t)count, NULL);
            result = rc < 0 ? PyErr_SetFromErrno(PyExc_OSError) : PyLong_FromLong(rc);
        }
    }
    PyBuffer_Release(&view);
    return result;
}


/* Counting objects in shared memory, laid out as three u32 words:
 *   +0 value (the futex word)  +4 parameter  +8 number of sleepers
 * A semaphore's parameter is its maximum, an event's is manual_reset.
 * The sleeper count lets set/post skip the wake-up system call when
 * nobody sleeps.  These loops run in C so a wake-up costs no Python. */
enum { TAKE_SEMAPHORE = 0, TAKE_EVENT = 1 };

/* A sleeper never sleeps longer than this without looking again.  post()
 * wakes only as many sleepers as it adds count; if one of them dies before
 * taking it, the count would otherwise stay there beside the others,
 * asleep, forever.  The re-check is one load, with no system call beyond
 * the wake-up itself. */
#define RECHECK_NS 50000000L

int ip_stop_after_wake = 0;

static int
try_take(uint32_t *w, int kind)
{
    uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
    if (kind == TAKE_EVENT) {
        if (__atomic_load_n(w + 1, __ATOMIC_RELAXED)) /* manual reset */
            return v != 0;
        uint32_t one = 1;
        return __atomic_compare_exchange_n(w, &one, 0, 0, __ATOMIC_ACQ_REL,
                                           __ATOMIC_RELAXED);
    }
    while (v > 0) {
        if (__atomic_compare_exchange_n(w, &v, v - 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return 1;
    }
    return 0;
}

static PyObject *
wait_take(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "kind", "timeout", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    int kind;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*ni|O", kw, &view, &offset,
                                     &kind, &timeout))
        return NULL;
    PyObject *result = NULL;
    int has_deadline, taken = 0;
    struct timespec deadline, left;
    uint32_t *w = ip_locate(&view, offset, 12, 4);
    if (w == NULL || ip_deadline(timeout, &has_deadline, &deadline) < 0)
        goto done;
    if (kind != TAKE_SEMAPHORE && kind != TAKE_EVENT) {
        PyErr_Format(PyExc_ValueError, "unknown kind %d", kind);
        goto done;
    }
    for (;;) {
        if (try_take(w, kind)) {
            taken = 1;
            break;
        }
        if (has_deadline && !ip_remaining(&deadline, &left))
            break;
        if (!has_deadline || left.tv_sec > 0 || left.tv_nsec > RECHECK_NS) {
            left.tv_sec = 0;
            left.tv_nsec = RECHECK_NS;
        }
        long rc;
        int err;
        Py_BEGIN_ALLOW_THREADS
        __atomic_add_fetch(w + 2, 1, __ATOMIC_SEQ_CST);
        rc = ip_futex(w, FUTEX_WAIT, 0, &left);
        err = errno;
        __atomic_sub_fetch(w + 2, 1, __ATOMIC_SEQ_CST);
        if (rc == 0 && ip_stop_after_wake)
            raise(SIGSTOP);
        Py_END_ALLOW_THREADS
        /* On every wake-up, not only EINTR: a signal that landed outside
         * the system call left only Python's flag behind. */
        if (PyErr_CheckSignals() < 0)
            goto done;
        if (rc < 0 && err != EINTR && err != EAGAIN && err != ETIMEDOUT) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
    }
    result = PyBool_FromLong(taken);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
post(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "kind", "count", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    int kind;
    unsigned int count = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*ni|I", kw, &view, &offset,
                                     &kind, &count))
        return NULL;
    PyObject *result = NULL;
    uint32_t *w = ip_locate(&view, offset, 12, 4);
    if (w == NULL)
        goto done;
    uint32_t prev;
    int wake;
    if (kind == TAKE_EVENT) {
        prev = __atomic_exchange_n(w, 1, __ATOMIC_SEQ_CST);
        wake = __atomic_load_n(w + 1, __ATOMIC_RELAXED) ? INT_MAX : 1;
    } else {
        uint32_t max = __atomic_load_n(w + 1, __ATOMIC_RELAXED);
        prev = __atomic_load_n(w, __ATOMIC_RELAXED);
        do {
            if (count == 0 || count > max || prev > max - count) {
                /* ValueError; Python names the semaphore */
                PyErr_Format(PyExc_ValueError,
                             "releasing %u would pass the maximum %u (count is %u)",
                             count, max, prev);
                goto done;
            }
        } while (!__atomic_compare_exchange_n(w, &prev, prev + count, 1,
                                              __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
        wake = (int)(count > INT_MAX ? INT_MAX : count);
    }
    /* seq_cst on both sides: the sleeper bumps the count before it checks
     * the value, we change the value before we read the count. */
    if (__atomic_load_n(w + 2, __ATOMIC_SEQ_CST))
        ip_futex(w, FUTEX_WAKE, (uint32_t)wake, NULL);
    result = PyLong_FromUnsignedLong(prev);
done:
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef ip_futex_methods[] = {
    {"futex_wait", (PyCFunction)(void (*)(void))futex_wait,
     METH_VARARGS | METH_KEYWORDS,
     "futex_wait($module, buffer, offset, expected, timeout=None)\n--\n\n"
     "Sleep while the 32-bit word at `offset` equals `expected`.\n\n"
     "Returns False on timeout and True otherwise (woken, value already\n"
     "different, or a signal whose handler did not raise): callers re-check\n"
     "their condition.  Releases the GIL while it sleeps."},
    {"futex_wake", (PyCFunction)(void (*)(void))futex_wake,
     METH_VARARGS | METH_KEYWORDS,
     "futex_wake($module, buffer, offset, count=INT_MAX)\n--\n\n"
     "Wake up to `count` waiters on the word at `offset`; returns how many woke."},
    {"wait_take", (PyCFunction)(void (*)(void))wait_take,
     METH_VARARGS | METH_KEYWORDS,
     "wait_take($module, buffer, offset, kind, timeout=None)\n--\n\n"
     "Take a semaphore count (kind 0) or an event signal (kind 1) from the\n"
     "three-word object at `offset`, sleeping on its futex until one is there.\n"
     "False on timeout.  Releases the GIL; signals are checked on wake-up."},
    {"post", (PyCFunction)(void (*)(void))post, METH_VARARGS | METH_KEYWORDS,
     "post($module, buffer, offset, kind, count=1)\n--\n\n"
     "Add `count` to a semaphore (ValueError past its maximum) or set an\n"
     "event, waking sleepers only if there are any; returns the old value."},
    {NULL, NULL, 0, NULL},
};
