/* futex wait / wake on a 32-bit word in shared memory.
 *
 * The words live in MAP_SHARED mappings used by several processes, so the
 * FUTEX_PRIVATE_FLAG must never be used here: private futexes are keyed by
 * the calling process's address space and would never see the other side.
 */
#include "native.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long
sys_futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

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
    rc = sys_futex(word, FUTEX_WAIT, (uint32_t)expected, has_deadline ? &left : NULL);
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
            long rc = sys_futex(word, FUTEX_WAKE, (uint32_t)count, NULL);
            result = rc < 0 ? PyErr_SetFromErrno(PyExc_OSError) : PyLong_FromLong(rc);
        }
    }
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
    {NULL, NULL, 0, NULL},
};
