/*
 * peers_test.c - unit tests of the page server's --peers table
 * (pageserver/peers.c) and of the key identity it is matched against
 * (amc_tls_key_hash: sha256 of the certificate's SubjectPublicKeyInfo DER,
 * the same value as NodeRecord.identity).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/tls_peer.h"
#include "../pageserver/peers.h"

#ifndef AMALGAM_NO_TLS
#include <openssl/pem.h>
#include <openssl/x509.h>
#endif

#include "check.h"

#define HA "sha256:5b8309658bc52f0fe5010d536074f2b03dcb4d5f09260de6cb2b23856b9e808d"
#define HB "sha256:0000000000000000000000000000000000000000000000000000000000000001"

static void table(void) {
  char err[256];
  struct peertable *t = NULL;
  CHECK(peertable_parse("# peers\n\nnode:a " HA "\n  node:b " HB " # comment\n", "p", &t, err,
                        sizeof err) == 0);
  CHECK(t && t->n == 2);
  CHECK(peertable_allows(t, "node:a", HA));
  CHECK(peertable_allows(t, "node:b", HB));
  CHECK(!peertable_allows(t, "node:a", HB)); /* a's name with b's key */
  CHECK(!peertable_allows(t, "node:c", HA));
  CHECK(!peertable_allows(t, "admin", HA)); /* the admin is allowed by the server, not the table */
  CHECK(!peertable_allows(t, NULL, HA));
  peertable_free(t);
  CHECK(peertable_parse("", "p", &t, err, sizeof err) == 0 && t->n == 0);
  CHECK(!peertable_allows(t, "node:a", HA));
  peertable_free(t);
  /* errors name the file and line */
  CHECK(peertable_parse("node:a " HA "\nnode:b\n", "p", &t, err, sizeof err) == -EINVAL &&
        strstr(err, "p:2:") && !t);
  CHECK(peertable_parse("a " HA "\n", "p", &t, err, sizeof err) == -EINVAL);
  CHECK(peertable_parse("node:A " HA "\n", "p", &t, err, sizeof err) == -EINVAL);
  CHECK(peertable_parse("node:a sha256:5B83\n", "p", &t, err, sizeof err) == -EINVAL);
  CHECK(peertable_parse("node:a " HA "0\n", "p", &t, err, sizeof err) == -EINVAL);
  CHECK(peertable_parse("node:a " HA " extra\n", "p", &t, err, sizeof err) == -EINVAL);
  CHECK(peertable_parse("node:a sha1:5b8309658bc52f0fe5010d536074f2b03dcb4d5f09260de6cb2b23856b9e808d\n",
                        "p", &t, err, sizeof err) == -EINVAL);
  /* from a file; a missing file says so */
  char path[] = "/tmp/peers_test.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  const char *text = "node:a " HA "\n";
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  CHECK(peertable_load(path, &t, err, sizeof err) == 0 && t->n == 1);
  peertable_free(t);
  unlink(path);
  CHECK(peertable_load(path, &t, err, sizeof err) == -ENOENT && strstr(err, "--peers"));
}

#ifndef AMALGAM_NO_TLS
/* node:a's certificate; HA is `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`. */
static const char cert_a[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBqDCCAU+gAwIBAgIUezyQbldt9svXUYqrl23Mq03AaeowCgYIKoZIzj0EAwIw\n"
    "KTEPMA0GA1UEAwwGbm9kZTphMRYwFAYDVQQKDA1hbWFsZ2FtOm5vZGVzMCAXDTI2\n"
    "MTIwMjIyMTExMVoYDzIxMjYxMTA4MjIxMTExWjApMQ8wDQYDVQQDDAZub2RlOmEx\n"
    "FjAUBgNVBAoMDWFtYWxnYW06bm9kZXMwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AASuM7UlIHVACBO/BrjD1VExmOeXZdNCCL7xfC+c1hFXP+LHSn8T8M0amE1N/AkX\n"
    "jI6r4tYTmyRA9DpIFie99xh6o1MwUTAdBgNVHQ4EFgQUXy/89rWwlcRKZASYobJO\n"
    "BpUnaGkwHwYDVR0jBBgwFoAUXy/89rWwlcRKZASYobJOBpUnaGkwDwYDVR0TAQH/\n"
    "BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBm/P6dkxn/3iSz0d+kwhyvghlVQry5\n"
    "JzOXXL4X4ai+BgIgZbEBWX+o16U5PjAKPAvquag7zSKniXVPu8ZJlILQYYI=\n"
    "-----END CERTIFICATE-----\n";

static void key_hash(void) {
  BIO *bio = BIO_new_mem_buf(cert_a, -1);
  X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  CHECK(x != NULL);
  char hash[AMC_KEY_HASH_LEN + 1];
  CHECK(amc_tls_key_hash(x, hash, sizeof hash) == 0 && strcmp(hash, HA) == 0);
  CHECK(amc_tls_key_hash(x, hash, AMC_KEY_HASH_LEN) == -EINVAL); /* no room for the NUL */
  CHECK(amc_tls_key_hash(NULL, hash, sizeof hash) == -EINVAL);
  X509_free(x);
  BIO_free(bio);
}
#endif

int main(void) {
  table();
#ifndef AMALGAM_NO_TLS
  key_hash();
#endif
  if (failures) {
    fprintf(stderr, "peers_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("peers_test: ok\n");
  return 0;
}
