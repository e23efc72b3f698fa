/*
 * server.h - the page server's connections: non-blocking sockets on the event
 * loop, an explicit state per connection, pipelined requests answered in order.
 */
#ifndef AMALGAM_SERVER_H
#define AMALGAM_SERVER_H

#include "ae.h"
#include "memrange.h"

struct server {
  ae_loop *loop;
  int listen_fd;
  int signal_fd; /* SIGTERM/SIGINT arrive here and stop the loop */
  struct memrange *range;
  struct conn **conns; /* indexed by fd, for shutdown */
  struct ssl_ctx_st *tls; /* SSL_CTX: mutual TLS on every connection; NULL: plaintext */
  int setsize;
};

struct ssl_ctx_st;

/*
 * Set up the loop around an already listening, non-blocking socket. With tls
 * (an SSL_CTX from tls_ctx_create, still owned by the caller) every connection
 * starts with a non-blocking TLS handshake; with NULL it is plaintext.
 */
int server_init(struct server *srv, int listen_fd, struct memrange *range,
                struct ssl_ctx_st *tls);
/* Serve until SIGTERM or SIGINT; returns 0 or -errno. */
int server_run(struct server *srv);
/* Close every connection and the loop (not the range). */
void server_close(struct server *srv);

#endif
