/* Shared declarations of the interproc._native extension.
 *
 * Every primitive lives in its own file and contributes one method table;
 * module.c stitches the tables together.  All of them address shared memory
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
extern PyMethodDef ip_pubsub_methods[];

/* Test hook (INTERPROC_TEST_STOP_AFTER_WAKE=1, read once at import): a
 * semaphore or event waiter that was woken stops itself with SIGSTOP before
 * it takes the count, so a test can SIGKILL it at exactly that moment. */
extern int ip_stop_after_wake;

/* Module-level constants added by each file's init hook. */
int ip_mutex_add_constants(PyObject *module);
int ip_ring_init(PyObject *module);

/* Resolve `offset` inside `view` for an object of `size` bytes aligned to
 * `align`; sets ValueError and returns NULL when it does not fit. */
void *ip_locate(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size,
                Py_ssize_t align);

/* Convert a Python timeout (None or seconds >= 0) to a monotonic deadline.
 * Returns 0 and sets *has_deadline; -1 with an exception set on bad input. */
int ip_deadline(PyObject *timeout, int *has_deadline, struct timespec *deadline);

/* Seconds left until `deadline` as a relative timespec; 0 when reached. */
int ip_remaining(const struct timespec *deadline, struct timespec *left);

#endif
