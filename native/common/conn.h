/*
 * conn.h - the client side of a TCP connection to a page server, as netmem and
 * remotedev's device client open it: resolve, connect without blocking for
 * longer than a timeout, TCP_NODELAY. Functions return 0 or -errno.
 */
#ifndef AMALGAM_COMMON_CONN_H
#define AMALGAM_COMMON_CONN_H

/* Hidden: libnetmem-preload.so is injected into programs and exports none of these. */
#pragma GCC visibility push(hidden)

/*
 * Connect to host:port (port numeric), trying each resolved address, each
 * connect bounded by timeout_ms. *fd_out: a connected, non-blocking,
 * close-on-exec socket with TCP_NODELAY. -EHOSTUNREACH when the name does not
 * resolve, -ETIMEDOUT, or the last address's connect error.
 */
int amc_dial(const char *host, const char *port, int timeout_ms, int *fd_out);
/*
 * Wait until fd is ready for events (POLLIN/POLLOUT), EINTR retried.
 * 1 ready, 0 timed out, -errno.
 */
int amc_wait_fd(int fd, short events, int timeout_ms);
/* Make fd blocking, every send and receive bounded by timeout_ms (SO_SNDTIMEO/SO_RCVTIMEO). */
int amc_set_blocking_timeouts(int fd, int timeout_ms);

#pragma GCC visibility pop

#endif
