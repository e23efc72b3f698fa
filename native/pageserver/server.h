/*
 * server.h - the page server's connections: non-blocking sockets on the event
 * loop, an explicit state per connection, pipelined requests answered in order.
 */
#ifndef AMALGAM_SERVER_H
#define AMALGAM_SERVER_H

#include "ae.h"
#include "devices.h"
#include "memrange.h"
#include "peers.h"

/* What bounds the resources one client can hold (main.c flags). */
struct server_limits {
  int max_connections;  /* open connections; over it a new one is closed at once */
  int handshake_ms;     /* a TLS handshake not done in this time: closed */
  int idle_ms;          /* no byte in either direction for this long: closed; 0 off */
};
#define SERVER_DEFAULT_MAX_CONNECTIONS 4096
#define SERVER_DEFAULT_HANDSHAKE_MS 5000
#define SERVER_DEFAULT_IDLE_MS 120000

struct server {
  ae_loop *loop;
  int listen_fd;
  int signal_fd; /* SIGTERM/SIGINT stop the loop; SIGHUP reloads the devices */
  struct memrange *range;
  struct conn **conns; /* indexed by fd, for shutdown */
  struct ssl_ctx_st *tls; /* SSL_CTX: mutual TLS on every connection; NULL: plaintext */
  int setsize;
  struct devtable *devices;  /* exported devices, NULL without --devices */
  const char *devices_file;  /* re-read on SIGHUP */
  uint8_t *bounce;           /* 4 KiB-aligned buffer for device I/O */
  struct peertable *peers;   /* allowed nodes (--peers), NULL: any member by the chain */
  const char *peers_file;    /* re-read on SIGHUP */
  struct server_limits limits;
  long long refused_since;   /* rate limit of the "cap reached" line: start of the window */
  unsigned long refused;     /* connections closed at the cap in that window */
};

struct ssl_ctx_st;

/*
 * Set up the loop around an already listening, non-blocking socket. With tls
 * (an SSL_CTX from tls_ctx_create, still owned by the caller) every connection
 * starts with a non-blocking TLS handshake; with NULL it is plaintext.
 */
int server_init(struct server *srv, int listen_fd, struct memrange *range,
                struct ssl_ctx_st *tls);
/*
 * Serve the devices listed in file (see devices.h), re-read on SIGHUP. Call
 * after server_init. Returns 0 or -errno with one line in err.
 */
int server_set_devices(struct server *srv, const char *file, char *err, size_t errlen);
/*
 * Allow only the nodes listed in file (see peers.h) and the admin credential;
 * re-read on SIGHUP, when connections of nodes no longer listed are closed.
 * Call after server_init, TLS only. Returns 0 or -errno with one line in err.
 */
int server_set_peers(struct server *srv, const char *file, char *err, size_t errlen);
/*
 * Apply limits (call after server_init). max_connections is lowered to what
 * RLIMIT_NOFILE allows (raised to its hard limit first), with a line on stderr.
 */
void server_set_limits(struct server *srv, const struct server_limits *limits);
/* Serve until SIGTERM or SIGINT; returns 0 or -errno. */
int server_run(struct server *srv);
/* Close every connection and the loop (not the range). */
void server_close(struct server *srv);

#endif
