/*
 * main.c - the amalgam page server: serves one range of the global address
 * space from anonymous memory over the amalgam wire protocol.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/numparse.h"
#include "server.h"
#include "tls.h"

static const char usage[] =
    "usage: pageserver (--tls-cert FILE --tls-key FILE --tls-ca FILE | --plaintext-loopback)\n"
    "                  --listen HOST:PORT --range-start ADDR --range-size BYTES\n"
    "                  [--devices FILE] [--peers FILE] [--max-connections N]\n"
    "                  [--handshake-timeout-ms MS] [--idle-timeout-ms MS]\n"
    "\n"
    "Serves [range-start, range-start + range-size) of amalgam's global address space\n"
    "from anonymous memory over the amalgam wire protocol (native/include/amalgam_wire.h).\n"
    "\n"
    "  --listen HOST:PORT     address to listen on; port 0 picks a free port. The first line\n"
    "                         on stdout is `listening HOST:PORT`. IPv6 as [::1]:PORT.\n"
    "  --range-start ADDR     first global address served (decimal or 0x hex, 8-aligned)\n"
    "  --range-size BYTES     bytes served (decimal or 0x hex; suffixes K, M, G accepted)\n"
    "  --devices FILE         also serve these devices (DEVICE_READ/WRITE/STAT/FSYNC); one\n"
    "                         per line: `<name> <ro|rw> <path>` (name [a-z0-9][a-z0-9._-]{0,62},\n"
    "                         path a block/character device or an image file; '#' comments).\n"
    "                         Re-read on SIGHUP: the table is replaced whole, or kept when the\n"
    "                         new file has an error.\n"
    "  --peers FILE           TLS only: the nodes allowed to connect, one per line:\n"
    "                         `node:<name> sha256:<hex of the key's SubjectPublicKeyInfo>`\n"
    "                         ('#' comments); any other node certificate is refused at the\n"
    "                         handshake (the admin credential stays allowed by the chain).\n"
    "                         Re-read on SIGHUP: connections of nodes no longer listed are\n"
    "                         closed. Without it, any member certificate is served.\n"
    "  --max-connections N    open connections at most (default 4096, bounded by\n"
    "                         RLIMIT_NOFILE); over it a new connection is closed at once\n"
    "  --handshake-timeout-ms MS  close a TLS handshake not done in MS (default 5000)\n"
    "  --idle-timeout-ms MS   close a connection without traffic for MS (default 120000;\n"
    "                         0: never)\n"
    "\n"
    "Exactly one transport:\n"
    "  --tls-cert FILE        mutual TLS (1.3, at least 1.2): this node's certificate (PEM,\n"
    "  --tls-key FILE         chain allowed) and its key; every peer must present a\n"
    "  --tls-ca FILE          certificate issued by the cluster CA in --tls-ca to a cluster\n"
    "                         member (CN node:<name> O amalgam:nodes, or CN admin O\n"
    "                         amalgam:admins). Any listen address.\n"
    "  --plaintext-loopback   no encryption, no authentication; only on a loopback address\n"
    "                         (for measuring the cost of TLS, and for local tests).\n"
    "  --help                 this text\n"
    "\n"
    "SIGTERM or SIGINT stops the server cleanly; SIGHUP re-reads --devices and --peers.\n";

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return 0;
}

/*
 * Open a non-blocking listening socket (only on a loopback address when
 * loopback_only). Returns fd or -errno.
 */
static int listen_on(const char *host, const char *port, int loopback_only, char *bound,
                     size_t boundlen) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0) {
    fprintf(stderr, "pageserver: cannot resolve --listen %s:%s: %s\n", host, port,
            gai_strerror(gai));
    return -EINVAL;
  }
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (loopback_only && !is_loopback(ai->ai_addr)) {
      fprintf(stderr,
              "pageserver: --listen %s is not a loopback address; --plaintext-loopback only "
              "serves on loopback (use --tls-cert/--tls-key/--tls-ca for other addresses)\n",
              host);
      freeaddrinfo(res);
      return -EPERM;
    }
  }
  int fd = -1, err = -EADDRNOTAVAIL;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
      err = -errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return err;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char ip[INET6_ADDRSTRLEN];
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
    err = -errno;
    close(fd);
    return err;
  }
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(bound, boundlen, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(bound, boundlen, "%s:%u", ip, ntohs(in->sin_port));
  }
  return fd;
}

/* An integer flag in [min, 2^31): 0, or -EINVAL with a line on stderr. */
static int limit_flag(const char *flag, const char *arg, uint64_t min, int *out) {
  uint64_t v;
  if (amc_parse_range(arg, min, 0x7fffffff, &v) < 0) {
    fprintf(stderr, "pageserver: %s: expected an integer >= %" PRIu64 ", got %s\n", flag, min,
            arg);
    return -EINVAL;
  }
  *out = (int)v;
  return 0;
}

static void free_tls(struct ssl_ctx_st *tls) {
#ifndef AMALGAM_NO_TLS
  tls_ctx_free(tls);
#else
  (void)tls;
#endif
}

int main(int argc, char **argv) {
  enum {
    OPT_LISTEN = 1,
    OPT_START,
    OPT_SIZE,
    OPT_PLAIN,
    OPT_CERT,
    OPT_KEY,
    OPT_CA,
    OPT_DEVICES,
    OPT_PEERS,
    OPT_MAXCONN,
    OPT_HANDSHAKE,
    OPT_IDLE,
    OPT_HELP
  };
  static const struct option opts[] = {
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"range-start", required_argument, NULL, OPT_START},
      {"range-size", required_argument, NULL, OPT_SIZE},
      {"plaintext-loopback", no_argument, NULL, OPT_PLAIN},
      {"tls-cert", required_argument, NULL, OPT_CERT},
      {"tls-key", required_argument, NULL, OPT_KEY},
      {"tls-ca", required_argument, NULL, OPT_CA},
      {"devices", required_argument, NULL, OPT_DEVICES},
      {"peers", required_argument, NULL, OPT_PEERS},
      {"max-connections", required_argument, NULL, OPT_MAXCONN},
      {"handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE},
      {"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0},
  };
  const char *listen_arg = NULL, *start_arg = NULL, *size_arg = NULL;
  const char *cert_arg = NULL, *key_arg = NULL, *ca_arg = NULL, *devices_arg = NULL;
  const char *peers_arg = NULL;
  struct server_limits limits = {SERVER_DEFAULT_MAX_CONNECTIONS, SERVER_DEFAULT_HANDSHAKE_MS,
                                 SERVER_DEFAULT_IDLE_MS};
  int plaintext = 0, opt;
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (opt) {
    case OPT_LISTEN: listen_arg = optarg; break;
    case OPT_START: start_arg = optarg; break;
    case OPT_SIZE: size_arg = optarg; break;
    case OPT_PLAIN: plaintext = 1; break;
    case OPT_CERT: cert_arg = optarg; break;
    case OPT_KEY: key_arg = optarg; break;
    case OPT_CA: ca_arg = optarg; break;
    case OPT_DEVICES: devices_arg = optarg; break;
    case OPT_PEERS: peers_arg = optarg; break;
    case OPT_MAXCONN:
    case OPT_HANDSHAKE:
    case OPT_IDLE:
      if (limit_flag(opt == OPT_MAXCONN ? "--max-connections"
                     : opt == OPT_HANDSHAKE ? "--handshake-timeout-ms"
                                            : "--idle-timeout-ms",
                     optarg, opt == OPT_IDLE ? 0 : 1,
                     opt == OPT_MAXCONN ? &limits.max_connections
                     : opt == OPT_HANDSHAKE ? &limits.handshake_ms
                                            : &limits.idle_ms) < 0)
        return 2;
      break;
    case OPT_HELP: fputs(usage, stdout); return 0;
    default: fputs(usage, stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "pageserver: unexpected argument: %s\n%s", argv[optind], usage);
    return 2;
  }
  int tls_given = (cert_arg != NULL) + (key_arg != NULL) + (ca_arg != NULL);
  if (plaintext == (tls_given > 0)) {
    fprintf(stderr,
            "pageserver: %s: give exactly one transport: mutual TLS with --tls-cert FILE "
            "--tls-key FILE --tls-ca FILE, or --plaintext-loopback (plaintext on loopback only)\n",
            plaintext ? "--plaintext-loopback and the --tls-* flags exclude each other"
                      : "refusing to start without a transport");
    return 2;
  }
  if (!plaintext && tls_given != 3) {
    fprintf(stderr, "pageserver: TLS needs all three of --tls-cert, --tls-key and --tls-ca\n");
    return 2;
  }
#ifdef AMALGAM_NO_TLS
  if (!plaintext) {
    fprintf(stderr,
            "pageserver: this build has no TLS (OpenSSL headers were missing at build time): "
            "install libssl-dev and rebuild with `make -C native`; only --plaintext-loopback "
            "works\n");
    return 2;
  }
#endif
  if (!listen_arg || !start_arg || !size_arg) {
    fprintf(stderr, "pageserver: --listen, --range-start and --range-size are required\n%s",
            usage);
    return 2;
  }
  uint64_t start, size;
  if (amc_parse_u64(start_arg, 0, &start) < 0) {
    fprintf(stderr, "pageserver: --range-start: not a number: %s\n", start_arg);
    return 2;
  }
  if (amc_parse_u64(size_arg, AMC_NUM_SUFFIX, &size) < 0 || size == 0) {
    fprintf(stderr, "pageserver: --range-size: not a positive size: %s\n", size_arg);
    return 2;
  }
  char host[256], port[16], bound[300];
  if (amc_split_host_port(listen_arg, host, sizeof host, port, sizeof port) < 0) {
    fprintf(stderr, "pageserver: --listen: expected HOST:PORT, got %s\n", listen_arg);
    return 2;
  }
  struct ssl_ctx_st *tls = NULL;
#ifndef AMALGAM_NO_TLS
  if (!plaintext) {
    char err[512];
    if (tls_ctx_create(&tls, cert_arg, key_arg, ca_arg, err, sizeof err) < 0) {
      fprintf(stderr, "pageserver: %s\n", err);
      return 1;
    }
  }
#endif
  struct memrange range;
  int rc = memrange_open(&range, start, size);
  if (rc < 0) {
    fprintf(stderr,
            "pageserver: cannot map range start=0x%" PRIx64 " size=%" PRIu64
            " (start must be 8-aligned, the range must not wrap): %s\n",
            start, size, strerror(-rc));
    free_tls(tls);
    return 1;
  }
  int lfd = listen_on(host, port, plaintext, bound, sizeof bound);
  if (lfd < 0) {
    if (lfd != -EPERM && lfd != -EINVAL)
      fprintf(stderr, "pageserver: cannot listen on %s: %s\n", listen_arg, strerror(-lfd));
    memrange_close(&range);
    free_tls(tls);
    return 1;
  }
  struct server srv;
  rc = server_init(&srv, lfd, &range, tls);
  if (rc < 0) {
    fprintf(stderr, "pageserver: cannot start the event loop: %s\n", strerror(-rc));
    close(lfd);
    memrange_close(&range);
    free_tls(tls);
    return 1;
  }
  server_set_limits(&srv, &limits);
  if (peers_arg) {
    char err[600];
    rc = server_set_peers(&srv, peers_arg, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "pageserver: --peers: %s\n", err);
      server_close(&srv);
      close(lfd);
      memrange_close(&range);
      free_tls(tls);
      return rc == -EINVAL ? 2 : 1;
    }
  }
  if (devices_arg) {
    char err[600];
    rc = server_set_devices(&srv, devices_arg, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "pageserver: --devices: %s\n", err);
      server_close(&srv);
      close(lfd);
      memrange_close(&range);
      free_tls(tls);
      return rc == -EINVAL ? 2 : 1;
    }
  }
  printf("listening %s\n", bound);
  fflush(stdout);
  fprintf(stderr,
          "pageserver: serving [0x%" PRIx64 ", 0x%" PRIx64 ") %s%s\n", start, start + size,
          plaintext ? "plaintext on loopback" : "over mutual TLS",
          range.hugepages ? ", huge pages advised" : "");
  if (srv.devices)
    fprintf(stderr, "pageserver: serving %zu devices from %s\n", srv.devices->n, devices_arg);
  if (srv.peers)
    fprintf(stderr, "pageserver: allowing %zu peers from %s\n", srv.peers->n, peers_arg);
  rc = server_run(&srv);
  server_close(&srv);
  close(lfd);
  memrange_close(&range);
  free_tls(tls);
  if (rc < 0) {
    fprintf(stderr, "pageserver: event loop failed: %s\n", strerror(-rc));
    return 1;
  }
  return 0;
}
