/* Doorbells, both ends (see doorbell.h for the protocol). */
#include "doorbell.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void
write_byte(int fd)
{
    char b = 1;
    ssize_t n = write(fd, &b, 1); /* EAGAIN: full, i.e. already readable */
    (void)n;
}

/* -- the waiting side --------------------------------------------------------- */

void
ip_doorbell_init(ip_doorbell *d)
{
    d->r = d->w = d->ep = d->pidfd = -1;
}

int
ip_doorbell_open(ip_doorbell *d, ip_bell_slot *slot, int watch_fd, uint32_t watch_pid,
                 uint32_t ringer_pid, const char *what)
{
    if (d->ep >= 0)
        return 0;
    char path[32];
    struct stat st;
    if (ringer_pid) {
        snprintf(path, sizeof path, "/proc/%u", ringer_pid);
        if (stat(path, &st) == 0 && st.st_uid != geteuid()) {
            PyErr_Format(PyExc_OSError,
                         "%s: fileno() needs both ends to run as the same user "
                         "(the other process rings a pipe of ours through /proc)", what);
            return -1;
        }
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    d->r = p[0];
    d->w = p[1];
    d->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = d->r;
    if (d->ep < 0 || epoll_ctl(d->ep, EPOLL_CTL_ADD, d->r, &ev) < 0 || fstat(d->r, &st) < 0)
        goto fail;
    if (watch_fd < 0 && watch_pid) {
        /* Gone already or no pidfds: the object's own checks report it. */
        d->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)watch_pid, 0);
        watch_fd = d->pidfd;
    }
    if (watch_fd >= 0) {
        ev.data.fd = watch_fd;
        if (epoll_ctl(d->ep, EPOLL_CTL_ADD, watch_fd, &ev) < 0)
            goto fail;
    }
    __atomic_store_n(&slot->fd, (uint32_t)d->r, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->ino, (uint64_t)st.st_ino, __ATOMIC_RELEASE); /* last: ringers read it first */
    return 0;
fail:
    PyErr_SetFromErrno(PyExc_OSError);
    ip_doorbell_close(d, NULL);
    return -1;
}

int
ip_doorbell_drain(ip_doorbell *d)
{
    char buf[64];
    int any = 0;
    if (d->r >= 0)
        while (read(d->r, buf, sizeof buf) > 0)
            any = 1;
    return any;
}

void
ip_doorbell_ring(ip_doorbell *d)
{
    if (d->w >= 0)
        write_byte(d->w);
}

int
ip_doorbell_watched_gone(ip_doorbell *d)
{
    if (d->pidfd < 0)
        return 0;
    struct pollfd p = {d->pidfd, POLLIN, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

void
ip_doorbell_close(ip_doorbell *d, ip_bell_slot *slot)
{
    if (slot && d->r >= 0)
        __atomic_store_n(&slot->ino, 0, __ATOMIC_RELEASE);
    close_fd(&d->ep);
    close_fd(&d->r);
    close_fd(&d->w);
    close_fd(&d->pidfd);
}

/* -- the ringing side --------------------------------------------------------- */

static int
bell_open(uint32_t pid, uint32_t fd, uint64_t ino)
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
ip_bell_peer_init(ip_bell_peer *p)
{
    p->fd = -1;
    p->failed = 0;
    p->ino = 0;
}

void
ip_bell_peer_ring(ip_bell_peer *p, ip_bell_slot *slot, uint32_t pid)
{
    uint64_t ino = __atomic_load_n(&slot->ino, __ATOMIC_ACQUIRE);
    if (ino != p->ino) {
        /* The peer closed that doorbell (writing to it now would only get
         * EPIPE), or made a new one: forget the old one and its failure. */
        close_fd(&p->fd);
        p->failed = 0;
        p->ino = ino;
    }
    if (ino == 0 || p->failed)
        return;
    if (p->fd < 0) {
        p->fd = bell_open(pid, __atomic_load_n(&slot->fd, __ATOMIC_RELAXED), ino);
        if (p->fd < 0) {
            p->failed = 1; /* not reopened on every message: only a new doorbell retries */
            return;
        }
    }
    write_byte(p->fd);
}

void
ip_bell_peer_close(ip_bell_peer *p)
{
    close_fd(&p->fd);
    p->ino = 0;
}
