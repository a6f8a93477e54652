/* Doorbells: a file descriptor for a shm:// channel, so that select/poll,
 * interproc.wait and asyncio can wait on it beside sockets.
 *
 * The ring's own waiting is a futex, which no poll() can watch.  A side that
 * wants a descriptor makes a pipe (its doorbell) and an epoll set holding
 * the pipe and the peer's pidfd, and publishes the pipe in the segment
 * (OFF_BELL + 16 * side: fd number, inode).  Before polling it *arms*: sets
 * the fd-waiter word next to the futex waiter flag (data_fdwait or
 * space_fdwait), fences, and re-checks the ring.  A publisher already checks
 * the futex flag after every store of head/tail (publish() in ring.h); it
 * now checks the neighbouring word too, in the same cache line, so the fast
 * path gains one L1 load.  Only when it is set does the publisher clear it
 * and write one byte into the peer's pipe, which it opens once through
 * /proc/PID/fd/N (a pipe may be reopened that way; eventfds and sockets may
 * not, and there is no socket in the shm:// rendezvous to pass an fd over).
 * The opened file must be a FIFO with the published inode, so a stale or
 * corrupted slot cannot make us write anywhere else.
 *
 * Arming drains the pipe first and then re-checks, so no wake-up is lost;
 * when the ring is ready at arm time the side rings its own bell, which
 * makes the descriptor behave level-triggered for callers that re-arm
 * (fileno()) before every wait.  Peer death shows through the pidfd in the
 * epoll set; the peer's close rings the bell; our own close rings it too. */
#include "ring.h"
#include "pubsub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint32_t fd, pad;
    uint64_t ino;
} bell_slot;

static bell_slot *
slot_of(ChanObject *self, int side)
{
    return (bell_slot *)((char *)self->view.buf + OFF_BELL + 16 * side);
}

void
ip_bell_init(ChanObject *self)
{
    self->bell_r = self->bell_w = self->bell_ep = self->peer_bell = -1;
    self->peer_bell_failed = 0;
}

static void
ring_fd(int fd)
{
    char b = 1;
    ssize_t n = write(fd, &b, 1); /* EAGAIN: full, i.e. already readable */
    (void)n;
}

void
ip_bell_ring_self(ChanObject *self)
{
    if (self->bell_w >= 0)
        ring_fd(self->bell_w);
}

static uint32_t
peer_pid(ChanObject *self)
{
    /* The ident of the other side: (pid u32, pad, start u64) at 24 / 40. */
    return __atomic_load_n((uint32_t *)((char *)self->view.buf + 24 + 16 * (1 - self->side)),
                           __ATOMIC_RELAXED);
}

int
ip_bell_open(uint32_t pid, uint32_t fd, uint64_t ino)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/fd/%u", pid, fd);
    /* O_PATH first: opening a device or file for real could have side
     * effects; only a FIFO with the published inode is reopened. */
    int p = open(path, O_PATH | O_CLOEXEC);
    struct stat st;
    if (p < 0 || fstat(p, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_ino != ino) {
        if (p >= 0)
            close(p);
        return -1;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", p);
    int w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    close(p);
    return w;
}

void
ip_bell_write(int fd)
{
    ring_fd(fd);
}

void
ip_bell_ring_peer(ChanObject *self)
{
    if (!self->has_view)
        return;
    bell_slot *s = slot_of(self, 1 - self->side);
    uint64_t ino = __atomic_load_n(&s->ino, __ATOMIC_ACQUIRE);
    if (self->peer_bell >= 0 && ino != self->peer_bell_ino) {
        /* The peer closed that doorbell (writing to it now would only get
         * EPIPE), or made a new one. */
        close(self->peer_bell);
        self->peer_bell = -1;
    }
    if (ino == 0)
        return; /* the peer has no doorbell */
    if (self->peer_bell < 0) {
        if (self->peer_bell_failed)
            return;
        uint32_t fd = __atomic_load_n(&s->fd, __ATOMIC_RELAXED);
        self->peer_bell = ip_bell_open(peer_pid(self), fd, ino);
        if (self->peer_bell < 0) {
            self->peer_bell_failed = 1;
            return;
        }
        self->peer_bell_ino = ino;
    }
    ring_fd(self->peer_bell);
}

void
ip_bell_wake(ChanObject *self, uint32_t *flag, uint32_t *word)
{
    if (__atomic_load_n(flag, __ATOMIC_RELAXED))
        ip_chan_wake(word);
    /* One shot: the waiter re-arms before each poll. */
    if (__atomic_load_n(flag + 1, __ATOMIC_RELAXED) &&
        __atomic_exchange_n(flag + 1, 0, __ATOMIC_SEQ_CST))
        ip_bell_ring_peer(self);
}

void
ip_bell_close(ChanObject *self)
{
    if (self->bell_r >= 0 && self->has_view)
        __atomic_store_n(&slot_of(self, self->side)->ino, 0, __ATOMIC_RELEASE);
    int *fds[] = {&self->bell_ep, &self->bell_r, &self->bell_w, &self->peer_bell};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    }
}

/* Make the doorbell on first use; -1 with an exception set. */
static int
bell_setup(ChanObject *self)
{
    if (self->bell_ep >= 0)
        return 0;
    if (self->closed || !self->has_view) {
        PyErr_SetString(PyExc_ValueError, "shm channel is closed");
        return -1;
    }
    /* The peer opens our pipe through /proc: that needs the same user. */
    char path[32];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%u", peer_pid(self));
    if (stat(path, &st) == 0 && st.st_uid != geteuid()) {
        PyErr_SetString(PyExc_OSError,
                        "shm channel: fileno() needs both ends to run as the same user "
                        "(the peer rings a pipe of ours through /proc)");
        return -1;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = p[0];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0 || fstat(p[0], &st) < 0)
        goto fail;
    if (self->pidfd >= 0) {
        ev.data.fd = self->pidfd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, self->pidfd, &ev) < 0)
            goto fail;
    }
    self->bell_r = p[0];
    self->bell_w = p[1];
    self->bell_ep = ep;
    bell_slot *s = slot_of(self, self->side);
    __atomic_store_n(&s->fd, (uint32_t)p[0], __ATOMIC_RELAXED);
    __atomic_store_n(&s->ino, (uint64_t)st.st_ino, __ATOMIC_RELEASE);
    return 0;
fail:
    PyErr_SetFromErrno(PyExc_OSError);
    close(p[0]);
    close(p[1]);
    if (ep >= 0)
        close(ep);
    return -1;
}

static int
drain(ChanObject *self)
{
    char buf[64];
    int any = 0;
    while (read(self->bell_r, buf, sizeof buf) > 0)
        any = 1;
    return any;
}

/* Announce, fence, re-check: 1 when ready now, 0 when the caller may poll
 * (the other side then rings us once it publishes). */
static int
arm(ChanObject *self, int for_space, uint64_t need)
{
    uint32_t *fw = for_space ? &self->tx->space_fdwait : &self->rx->data_fdwait;
    __atomic_store_n(fw, 1, __ATOMIC_SEQ_CST);
    ip_heavy_fence(self->asym);
    return self->closed || self->broken ||
           (for_space ? tx_ready(self, need) : rx_ready(self)) || ip_peer_gone(self);
}

/* fileno()'s arming: drain first, then arm, and ring our own bell when
 * ready, so that a poll right after returns at once (level-triggered for
 * callers that re-arm before every wait). */
static int
rearm(ChanObject *self)
{
    drain(self);
    int r = arm(self, 0, 0);
    if (r)
        ip_bell_ring_self(self);
    return r;
}

int
ip_bell_rearm(ChanObject *self)
{
    return self->bell_ep >= 0 && !self->closed ? rearm(self) : 0;
}

PyObject *
ip_bell_fileno(ChanObject *self, PyObject *unused)
{
    if (bell_setup(self) < 0)
        return NULL;
    rearm(self);
    return PyLong_FromLong(self->bell_ep);
}

PyObject *
ip_bell_arm_recv(ChanObject *self, PyObject *unused)
{
    if (bell_setup(self) < 0)
        return NULL;
    return PyBool_FromLong(arm(self, 0, 0));
}

PyObject *
ip_bell_arm_send(ChanObject *self, PyObject *arg)
{
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (bell_setup(self) < 0)
        return NULL;
    if (n < 0 || (uint64_t)n + 8 > self->cap / 2)
        return Py_NewRef(Py_True); /* send() itself reports the problem */
    return PyBool_FromLong(arm(self, 1, tx_need(self, (uint64_t)n)));
}

PyObject *
ip_bell_drain(ChanObject *self, PyObject *unused)
{
    if (self->bell_r < 0)
        return Py_NewRef(Py_False);
    return PyBool_FromLong(drain(self));
}
