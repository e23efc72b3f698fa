/*
 * tls_peer.h - mutual TLS between cluster members (OpenSSL), the parts every
 * native component shares: the peer-certificate check (the chain must verify
 * against the cluster CA and the leaf must name a member: CN `node:<name>` O
 * `amalgam:nodes`, or CN `admin` O `amalgam:admins`), the client context and
 * the client handshake with a timeout. The page server checks its clients
 * with it; netmem and remotedev's device client dial page servers with it.
 * Absent when built with AMALGAM_NO_TLS. Functions return 0 or -errno.
 */
#ifndef AMALGAM_COMMON_TLS_PEER_H
#define AMALGAM_COMMON_TLS_PEER_H

#include <stddef.h>

/* Hidden: libnetmem-preload.so is injected into programs and exports none of these. */
#pragma GCC visibility push(hidden)

/* 1 if s is a node name: an RFC 1123 label [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?. */
int amc_node_name_valid(const char *s);

#ifndef AMALGAM_NO_TLS
struct ssl_ctx_st;        /* SSL_CTX */
struct ssl_st;            /* SSL */
struct x509_store_ctx_st; /* X509_STORE_CTX */

/* Who the peer must be. */
enum amc_peer {
  AMC_PEER_MEMBER, /* a node or the admin */
  AMC_PEER_NODE,   /* a node only (a page server's certificate is its node's) */
};

/* The openssl error queue as one line (and cleared), for logs. */
void amc_tls_last_error(char *buf, size_t len);
/* 1 if a subject (CN, O) names a cluster member / a node; 0 otherwise. */
int amc_tls_subject_is_member(const char *cn, const char *o);
int amc_tls_subject_is_node(const char *cn, const char *o);
/* SSL verify callbacks: the chain must verify and the leaf must name a member / a node. */
int amc_tls_verify_member(int preverify_ok, struct x509_store_ctx_st *store);
int amc_tls_verify_node(int preverify_ok, struct x509_store_ctx_st *store);

/*
 * A client context from PEM files (this member's certificate chain and key,
 * the cluster CA): TLS 1.2 at least, the server's certificate checked by the
 * peer rule, no session tickets or renegotiation, partial writes allowed.
 * -EINVAL with one line in err saying which file and why.
 */
int amc_tls_client_ctx(struct ssl_ctx_st **out, const char *cert_file, const char *key_file,
                       const char *ca_file, enum amc_peer peer, char *err, size_t errlen);
/*
 * The client handshake on the connected socket fd (blocking or not), each
 * wait bounded by timeout_ms; sni: the server name to send, or NULL.
 * expect_node: when not NULL, the server's certificate must name exactly that
 * node (CN `node:<expect_node>`), else the session is dropped before any byte
 * of a request is sent. *out: the session (the caller frees it with SSL_free;
 * fd stays the caller's).
 * -EACCES: the server's certificate was refused (chain, subject, or another
 * node's: err then says `expected node:B, the certificate of node:A
 * answered`); -ETIMEDOUT; -ECONNREFUSED: the handshake failed otherwise (the
 * server refused ours); -ENOMEM. err says why in one line.
 */
int amc_tls_handshake(struct ssl_ctx_st *ctx, int fd, const char *sni, const char *expect_node,
                      int timeout_ms, struct ssl_st **out, char *err, size_t errlen);
/*
 * The common name of the verified peer certificate of ssl into cn: 0, or
 * -ENOENT (no certificate, or no single plain-text CN).
 */
int amc_tls_peer_cn(struct ssl_st *ssl, char *cn, size_t len);
/*
 * 0 when the peer certificate of an established session names exactly node
 * (CN `node:<node>`); else -EACCES with err saying which node was expected
 * and which certificate answered.
 */
int amc_tls_expect_node(struct ssl_st *ssl, const char *node, char *err, size_t errlen);

struct x509_st; /* X509 */
#define AMC_KEY_HASH_LEN 71 /* "sha256:" + 64 hex digits */
/*
 * The identity of a certificate's key as the control plane records it
 * (NodeRecord.identity): `sha256:<hex>` of the DER SubjectPublicKeyInfo, into
 * out (at least AMC_KEY_HASH_LEN + 1 bytes). 0, -EINVAL or -ENOMEM.
 */
int amc_tls_key_hash(struct x509_st *cert, char *out, size_t len);
#endif

#pragma GCC visibility pop

#endif
