/* Robust, process-shared, recursive mutex placed in shared memory.
 *
 * This is glibc's robust pthread mutex: the kernel walks each dying thread's
 * robust list and marks the mutexes it still held, so the next locker gets
 * EOWNERDEAD -- the Win32 WAIT_ABANDONED rule -- even after SIGKILL.
 * Recursive like a Win32 mutex: the owning thread may lock it again.
 *
 * pthread_mutex_clocklock does not return on EINTR, so a long wait is cut
 * into short slices with a signal check between them; that keeps Ctrl-C
 * working at the cost of one wake-up per slice while blocked.
 */
#include "native.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define SLICE_NS 50000000L /* 50 ms between signal checks */

static PyObject *
mutex_init(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n", &view, &offset))
        return NULL;
    PyObject *result = NULL;
    pthread_mutex_t *m = ip_locate(&view, offset, sizeof(pthread_mutex_t), 8);
    if (m != NULL) {
        pthread_mutexattr_t attr;
        int rc = pthread_mutexattr_init(&attr);
        if (!rc) rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (!rc) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        if (!rc) rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        if (!rc) {
            memset(m, 0, sizeof(*m));
            rc = pthread_mutex_init(m, &attr);
        }
        pthread_mutexattr_destroy(&attr);
        if (rc) {
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
mutex_lock(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"buffer", "offset", "timeout", NULL};
    Py_buffer view;
    Py_ssize_t offset;
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "w*n|O", kw, &view, &offset,
                                     &timeout))
        return NULL;

    PyObject *result = NULL;
    int has_deadline, rc;
    struct timespec deadline, slice;
    pthread_mutex_t *m = ip_locate(&view, offset, sizeof(pthread_mutex_t), 8);
    if (m == NULL || ip_deadline(timeout, &has_deadline, &deadline) < 0)
        goto done;

    rc = pthread_mutex_trylock(m);
    while (rc == EBUSY) {
        struct timespec left = {0, 0};
        if (has_deadline && !ip_remaining(&deadline, &left)) {
            rc = ETIMEDOUT;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &slice);
        if (has_deadline && left.tv_sec == 0 && left.tv_nsec < SLICE_NS) {
            slice = deadline;
        } else {
            slice.tv_nsec += SLICE_NS;
            if (slice.tv_nsec >= 1000000000L) {
                slice.tv_sec += 1;
                slice.tv_nsec -= 1000000000L;
            }
        }
        Py_BEGIN_ALLOW_THREADS
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &slice);
        Py_END_ALLOW_THREADS
        if (rc == ETIMEDOUT) {
            if (PyErr_CheckSignals() < 0)
                goto done;
            rc = EBUSY;
        }
    }

    switch (rc) {
    case 0:
        result = PyLong_FromLong(0);
        break;
    case EOWNERDEAD:
        /* We own it now; mark it usable again and tell the caller. */
        pthread_mutex_consistent(m);
        result = PyLong_FromLong(1);
        break;
    case ETIMEDOUT:
        result = PyLong_FromLong(-1);
        break;
    default:
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
    }
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
mutex_unlock(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n", &view, &offset))
        return NULL;
    PyObject *result = NULL;
    pthread_mutex_t *m = ip_locate(&view, offset, sizeof(pthread_mutex_t), 8);
    if (m != NULL) {
        int rc = pthread_mutex_unlock(m);
        if (rc) {
            errno = rc;
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

PyMethodDef ip_mutex_methods[] = {
    {"mutex_init", mutex_init, METH_VARARGS,
     "mutex_init($module, buffer, offset, /)\n--\n\n"
     "Initialise a robust, process-shared, recursive mutex at `offset`."},
    {"mutex_lock", (PyCFunction)(void (*)(void))mutex_lock,
     METH_VARARGS | METH_KEYWORDS,
     "mutex_lock($module, buffer, offset, timeout=None)\n--\n\n"
     "Lock the mutex: 0 = acquired, 1 = acquired but its previous owner died\n"
     "holding it (made consistent again), -1 = timed out.  Releases the GIL\n"
     "and checks for signals every 50 ms while it waits."},
    {"mutex_unlock", mutex_unlock, METH_VARARGS,
     "mutex_unlock($module, buffer, offset, /)\n--\n\n"
     "Unlock the mutex; OSError(EPERM) if this thread does not own it."},
    {NULL, NULL, 0, NULL},
};

int
ip_mutex_add_constants(PyObject *module)
{
    return PyModule_AddIntConstant(module, "MUTEX_SIZE", sizeof(pthread_mutex_t));
}
