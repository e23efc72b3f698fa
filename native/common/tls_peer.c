/* tls_peer.c - see tls_peer.h. */
#include "tls_peer.h"

#include <string.h>

/* A node name is an RFC 1123 label: [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?. */
int amc_node_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0 && i < n - 1);
    if (!ok) return 0;
  }
  return 1;
}

#ifndef AMALGAM_NO_TLS
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conn.h"

#define NODE_CN_PREFIX "node:"
#define NODE_O "amalgam:nodes"
#define ADMIN_CN "admin"
#define ADMIN_O "amalgam:admins"

void amc_tls_last_error(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (len == 0) return;
  if (e == 0)
    snprintf(buf, len, "no detail from openssl");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
}


int amc_tls_subject_is_node(const char *cn, const char *o) {
  if (!cn || !o || strcmp(o, NODE_O) != 0) return 0;
  if (strncmp(cn, NODE_CN_PREFIX, strlen(NODE_CN_PREFIX)) != 0) return 0;
  return amc_node_name_valid(cn + strlen(NODE_CN_PREFIX));
}

int amc_tls_subject_is_member(const char *cn, const char *o) {
  if (!cn || !o) return 0;
  if (strcmp(o, ADMIN_O) == 0 && strcmp(cn, ADMIN_CN) == 0) return 1;
  return amc_tls_subject_is_node(cn, o);
}

/*
 * The single value of attribute nid in name, copied to buf; -ENOENT when it is
 * absent, repeated, or not plain text without NUL bytes.
 */
static int single_entry(X509_NAME *name, int nid, char *buf, size_t len) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0 || X509_NAME_get_index_by_NID(name, nid, idx) >= 0) return -ENOENT;
  X509_NAME_ENTRY *ent = X509_NAME_get_entry(name, idx);
  if (!ent) return -ENOENT;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(ent);
  if (!data) return -ENOENT;
  int n = ASN1_STRING_length(data);
  const unsigned char *p = ASN1_STRING_get0_data(data);
  if (n < 0 || !p || (size_t)n >= len || memchr(p, 0, (size_t)n)) return -ENOENT;
  memcpy(buf, p, (size_t)n);
  buf[n] = '\0';
  return 0;
}

/* Chain verified by openssl; at the leaf, also insist on a subject the rule accepts. */
static int verify_leaf(int preverify_ok, X509_STORE_CTX *store,
                       int (*accepts)(const char *cn, const char *o)) {
  if (!preverify_ok) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  X509 *leaf = X509_STORE_CTX_get_current_cert(store);
  X509_NAME *subject = leaf ? X509_get_subject_name(leaf) : NULL;
  char cn[128], o[128];
  if (subject && single_entry(subject, NID_commonName, cn, sizeof cn) == 0 &&
      single_entry(subject, NID_organizationName, o, sizeof o) == 0 && accepts(cn, o))
    return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

int amc_tls_verify_member(int preverify_ok, X509_STORE_CTX *store) {
  return verify_leaf(preverify_ok, store, amc_tls_subject_is_member);
}

int amc_tls_verify_node(int preverify_ok, X509_STORE_CTX *store) {
  return verify_leaf(preverify_ok, store, amc_tls_subject_is_node);
}

static int ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what, const char *file) {
  char detail[256];
  amc_tls_last_error(detail, sizeof detail);
  snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", detail);
  SSL_CTX_free(ctx);
  return -EINVAL;
}

int amc_tls_client_ctx(SSL_CTX **out, const char *cert_file, const char *key_file,
                       const char *ca_file, enum amc_peer peer, char *err, size_t errlen) {
  *out = NULL;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return ctx_fail(NULL, err, errlen, "cannot create the TLS context", NULL);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return ctx_fail(ctx, err, errlen, "cannot set the minimum TLS version", NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
    return ctx_fail(ctx, err, errlen, "cannot load the certificate", cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
    return ctx_fail(ctx, err, errlen, "cannot load the key", key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return ctx_fail(ctx, err, errlen, "the key does not match the certificate", key_file);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
    return ctx_fail(ctx, err, errlen, "cannot load the CA", ca_file);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER,
                     peer == AMC_PEER_NODE ? amc_tls_verify_node : amc_tls_verify_member);
  SSL_CTX_set_verify_depth(ctx, 4);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_AUTO_RETRY);
  *out = ctx;
  return 0;
}

/* Why a handshake step failed, as -errno with err set. */
static int handshake_failure(SSL *ssl, char *err, size_t errlen) {
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK) {
    snprintf(err, errlen, "server certificate: %s", X509_verify_cert_error_string(v));
    ERR_clear_error();
    return -EACCES;
  }
  amc_tls_last_error(err, errlen);
  return -ECONNREFUSED;
}

int amc_tls_handshake(SSL_CTX *ctx, int fd, const char *sni, const char *expect_node,
                      int timeout_ms, SSL **out, char *err, size_t errlen) {
  *out = NULL;
  SSL *ssl = SSL_new(ctx);
  if (!ssl || SSL_set_fd(ssl, fd) != 1) {
    amc_tls_last_error(err, errlen);
    SSL_free(ssl);
    return -ENOMEM;
  }
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  for (;;) {
    ERR_clear_error();
    int n = SSL_connect(ssl);
    if (n == 1) break;
    int e = SSL_get_error(ssl, n);
    short events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    int rc = events ? amc_wait_fd(fd, events, timeout_ms) : handshake_failure(ssl, err, errlen);
    if (rc == 0) {
      snprintf(err, errlen, "no answer");
      rc = -ETIMEDOUT;
    }
    if (rc < 0) {
      SSL_free(ssl);
      return rc;
    }
  }
  if (expect_node) {
    int rc = amc_tls_expect_node(ssl, expect_node, err, errlen);
    if (rc) {
      SSL_free(ssl); /* no close_notify, no request: the peer gets nothing */
      return rc;
    }
  }
  *out = ssl;
  return 0;
}

int amc_tls_peer_cn(SSL *ssl, char *cn, size_t len) {
  X509 *peer = SSL_get1_peer_certificate(ssl);
  if (!peer) return -ENOENT;
  X509_NAME *subject = X509_get_subject_name(peer);
  int rc = subject ? single_entry(subject, NID_commonName, cn, len) : -ENOENT;
  X509_free(peer);
  return rc;
}

int amc_tls_expect_node(SSL *ssl, const char *node, char *err, size_t errlen) {
  char cn[128];
  if (amc_tls_peer_cn(ssl, cn, sizeof cn) < 0) snprintf(cn, sizeof cn, "(none)");
  if (strncmp(cn, NODE_CN_PREFIX, strlen(NODE_CN_PREFIX)) == 0 &&
      strcmp(cn + strlen(NODE_CN_PREFIX), node) == 0)
    return 0;
  snprintf(err, errlen, "expected node:%s, the certificate of %s answered; refused", node, cn);
  return -EACCES;
}

int amc_tls_key_hash(X509 *cert, char *out, size_t len) {
  if (!cert || len < AMC_KEY_HASH_LEN + 1) return -EINVAL;
  EVP_PKEY *key = X509_get0_pubkey(cert);
  if (!key) return -EINVAL;
  unsigned char *der = NULL;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return -ENOMEM;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
  OPENSSL_free(der);
  if (!ok || mdlen != 32) return -ENOMEM;
  memcpy(out, "sha256:", 7);
  for (unsigned int i = 0; i < mdlen; i++) snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
  return 0;
}

#endif
