/* Doorbells: a file descriptor for a futex-based object -- a shm:// channel
 * side, a pub/sub subscriber or publisher -- so that select/poll,
 * interproc.wait and asyncio can wait on it beside sockets.  One mechanism
 * for all of them (doorbell.c); bell.c and pubsub_core.c only say where
 * their bells live in their segment and when they ring.
 *
 * Futex waiting is invisible to poll().  A side that wants a descriptor
 * makes a pipe (its doorbell) and an epoll set holding the pipe and the
 * pidfd of the process that would wake it, and publishes the pipe in the
 * shared segment (an ip_bell_slot: fd number, inode).  Before polling it
 * *arms* (a one-shot word its object defines), fences, and re-checks.  The
 * other side, seeing it armed, clears the word and writes one byte into the
 * pipe, which it opens once through /proc/PID/fd/N (a pipe may be reopened
 * that way; eventfds and sockets may not, and a shared segment is no socket
 * to pass an fd over).  The opened file must be a FIFO with the published
 * inode, so a stale or corrupted slot cannot make us write anywhere else.
 * Peer death shows through the pidfd in the epoll set. */
#ifndef INTERPROC_DOORBELL_H
#define INTERPROC_DOORBELL_H

#include "native.h"

/* A doorbell as published in a segment.  `fdwait` is the one-shot "armed"
 * word where the object keeps it there (pub/sub); shm:// rings keep theirs
 * next to the futex flag and leave this word unused. */
typedef struct {
    uint32_t fd, fdwait;
    uint64_t ino;
} ip_bell_slot;

/* The waiting side: our pipe, and the epoll set handed out as fileno(). */
typedef struct {
    int r, w, ep;
    int pidfd;    /* the watched process, when we opened it (owned) */
} ip_doorbell;

/* The ringing side: the other process's pipe, opened once and cached. */
typedef struct {
    int fd, failed;
    uint64_t ino;
} ip_bell_peer;

void ip_doorbell_init(ip_doorbell *d);
/* Make the pipe and the epoll set on first use and publish them in `slot`.
 * The epoll set also watches `watch_fd` (not owned) or else the process
 * `watch_pid` (0: none).  `ringer_pid` (0: any) must run as our user, since
 * it opens our pipe through /proc.  0, or -1 with an exception set. */
int ip_doorbell_open(ip_doorbell *d, ip_bell_slot *slot, int watch_fd, uint32_t watch_pid,
                     uint32_t ringer_pid, const char *what);
static inline int ip_doorbell_ok(const ip_doorbell *d) { return d->ep >= 0; }
int ip_doorbell_drain(ip_doorbell *d);      /* 1 if it had rung */
void ip_doorbell_ring(ip_doorbell *d);      /* our own pollers (ready at arm time, close) */
int ip_doorbell_watched_gone(ip_doorbell *d); /* the pidfd we opened is readable */
/* Unpublish (slot NULL: the segment is gone) and close everything. */
void ip_doorbell_close(ip_doorbell *d, ip_bell_slot *slot);

void ip_bell_peer_init(ip_bell_peer *p);
/* Ring the doorbell published in `slot` by process `pid`, if there is one. */
void ip_bell_peer_ring(ip_bell_peer *p, ip_bell_slot *slot, uint32_t pid);
void ip_bell_peer_close(ip_bell_peer *p);

#endif
