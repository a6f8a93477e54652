/* Shared declarations of the interproc._native extension.
 *
 * Every primitive lives in its own file and contributes one method table;
 * module.c stitches the tables together; helpers.c holds what they share.  All of them address shared memory
 * as (buffer, offset) and bounds-check the pair before touching it: the
 * contents of a segment are never trusted.
 */
#ifndef INTERPROC_NATIVE_H
#define INTERPROC_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* futex(2) on a word that several processes map.  Never with
 * FUTEX_PRIVATE_FLAG: private futexes are keyed by the caller's address
 * space and would never see the other process. */
static inline long
ip_futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline long long
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The polite busy-wait hint of the CPU. */
static inline void
ip_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

extern PyMethodDef ip_atomic_methods[];
extern PyMethodDef ip_futex_methods[];
extern PyMethodDef ip_mutex_methods[];
extern PyMethodDef ip_ring_methods[];
extern PyMethodDef ip_framing_methods[];
extern PyMethodDef ip_pubsub_core_methods[];

/* Test hook (INTERPROC_TEST_STOP_AFTER_WAKE=1, read once at import): a
 * semaphore or event waiter that was woken stops itself with SIGSTOP before
 * it takes the count, so a test can SIGKILL it at exactly that moment. */
extern int ip_stop_after_wake;

/* Module-level constants and types added by each file's init hook. */
int ip_mutex_add_constants(PyObject *module);
int ip_ring_init(PyObject *module);
int ip_pubsub_init(PyObject *module);
int ip_listen_bell_init(PyObject *module);

/* module.c: the module state holds the exception classes that
 * interproc._errors gives meaning to (set once by set_errors()). */
typedef struct {
    PyObject *closed, *timeout, *protocol, *too_large, *handle_closed;
} ip_state;
enum { IP_ERR_CLOSED, IP_ERR_TIMEOUT, IP_ERR_PROTOCOL, IP_ERR_TOO_LARGE, IP_ERR_HANDLE_CLOSED };
ip_state *ip_get_state(void);
/* The class for `which`, or `fallback` before set_errors() ran. */
PyObject *ip_error(int which, PyObject *fallback);

/* chanwait.c: asymmetric Dekker fences (see there).  ip_asym_ok is 1 once
 * this process registered for membarrier(GLOBAL_EXPEDITED); the side about
 * to sleep calls ip_heavy_fence(1), the hot side then needs no fence. */
extern int ip_asym_ok;
int ip_asym_register(void);
void ip_heavy_fence(int asym);

/* helpers.c */

/* Add a dict `name` of layout numbers to the module (Python reads offsets
 * from C instead of repeating them). */
typedef struct {
    const char *name;
    long value;
} ip_layout_entry;
int ip_add_layout(PyObject *module, const char *name, const ip_layout_entry *entries, size_t n);


/* Resolve `offset` inside `view` for an object of `size` bytes aligned to
 * `align`; sets ValueError and returns NULL when it does not fit. */
void *ip_locate(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size,
                Py_ssize_t align);

/* Convert a Python timeout (None or seconds >= 0) to a monotonic deadline.
 * Returns 0 and sets *has_deadline; -1 with an exception set on bad input. */
int ip_deadline(PyObject *timeout, int *has_deadline, struct timespec *deadline);

/* Seconds left until `deadline` as a relative timespec; 0 when reached. */
int ip_remaining(const struct timespec *deadline, struct timespec *left);

/* A Python timeout as an absolute CLOCK_MONOTONIC deadline in ns (-1: none). */
long long ip_deadline_ns(PyObject *timeout, long long *out);

/* Parse `npos` positional arguments and an optional `timeout` (positional
 * or keyword) from a METH_FASTCALL | METH_KEYWORDS call. */
int ip_parse_timeout_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, int npos, PyObject **pos, PyObject **timeout);

#endif
