/* Layout of the pub/sub segment (interproc/_pubsub/__init__.py has the
 * picture).  Python reads these numbers from _native, so they are written
 * once, here. */
#ifndef INTERPROC_PUBSUB_H
#define INTERPROC_PUBSUB_H

#include "native.h"
#include "doorbell.h"

#define PS_OFF_PUBLISHED 64    /* i64; low 32 bits: subscribers' futex word */
#define PS_OFF_SUB_WAITERS 72  /* i64 */
#define PS_OFF_CLOSED 80       /* u32 */
#define PS_OFF_PUB_PID 88      /* u32 pid, pad, u64 start */
#define PS_OFF_HWM 104         /* u32 */
#define PS_OFF_SPACE 128       /* u32: the publisher's futex word */
#define PS_OFF_PUB_WAITING 136 /* i64 */
#define PS_OFF_GEN 144         /* i64 */
#define PS_OFF_PUB_BELL 152    /* u32 fd, u32 fdwait, u64 inode: the publisher's doorbell */
#define PS_OFF_TABLE 192
#define PS_ENTRY 64
#define PS_E_WORD 0
#define PS_E_PID 8
#define PS_E_POLICY 12
#define PS_E_START 16
#define PS_E_READ 24
#define PS_E_DROPPED 32
#define PS_E_RECEIVED 40
#define PS_E_BELL 48           /* u32 fd, u32 fdwait, u64 inode: the subscriber's doorbell */
#define PS_SLOT_HEADER 64
#define PS_WRITING (-1)
#define PS_FREE 0
#define PS_CLAIMING 1
#define PS_ACTIVE 2
#define PS_BLOCK 0
#define PS_DROP_OLDEST 1

int ip_pubsub_init(PyObject *module);

/* -- the C core (pubsub_core.c, pubsub_pub.c, pubsub_sub.c) -------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view, closed, is_pub;
    char *base;
    uint32_t max_subs, slots, history;
    uint64_t slot_size, stride, slots_off;
    PyObject *slow_wait; /* slow_wait(seq, timeout): returns once there may be room */
    long long spin_ns;
    /* publisher */
    int64_t seq, gen, min_read;
    int loaned;
    ip_bell_peer *bells;  /* per entry: its doorbell, opened once rung */
    /* subscriber */
    Py_ssize_t entry;
    int policy;
    int64_t cursor, read_pos, received, dropped;
    uint8_t *held;        /* samples held, by seq % slots */
    Py_ssize_t live;      /* slot views still exported */
    ip_bell_peer pub_bell;
    /* both: our own doorbell (fileno(), asyncio), and whether we count
     * ourselves a sleeper (sub_waiters / pub_waiting) while it is armed */
    ip_doorbell bell;
    int bell_counted;
} CoreObject;

typedef struct {
    PyObject_HEAD
    CoreObject *core; /* NULL once released */
    int64_t seq;
    PyObject *buf;
    /* Block policy, until released: the exporter behind buf.  Held here, not
     * found again through buf: once buf is released, its base pointer is
     * borrowed and may dangle. */
    struct SlotViewObject *slot;
} SampleObject;

typedef struct SlotViewObject {
    PyObject_HEAD
    CoreObject *core;
    char *ptr;
    Py_ssize_t len;
    int exports, done;
} SlotViewObject;

extern PyTypeObject ps_sample_type, ps_slotview_type;

#define AT(self, off, T) ((T *)((self)->base + (off)))

static inline int64_t
load64(CoreObject *self, Py_ssize_t off)
{
    return __atomic_load_n(AT(self, off, int64_t), __ATOMIC_SEQ_CST);
}

/* pubsub_core.c */
int ps_closed_check(CoreObject *self, const char *who);
PyObject *ps_remaining(long long deadline);
void ps_ring(ip_bell_peer *peer, ip_bell_slot *b, uint32_t pid, int force);
void ps_ring_subscribers(CoreObject *self, int force);
void ps_drop_view(CoreObject *self);
void ps_disarm(CoreObject *self);
/* pubsub_pub.c */
PyObject *ps_pub_send(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *ps_pub_claim(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *ps_pub_publish(CoreObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_pub_discard(CoreObject *self, PyObject *unused);
PyObject *ps_pub_has_room(CoreObject *self, PyObject *arg);
int ps_pub_room_now(CoreObject *self);
/* pubsub_sub.c */
PyObject *ps_sub_recv(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
void ps_sub_release(CoreObject *self, int64_t seq);
/* pubsub_batch.c */
PyObject *ps_sub_recv_available(CoreObject *self, PyObject *max);

#endif
