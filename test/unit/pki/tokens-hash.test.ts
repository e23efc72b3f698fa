import t from 'tap';
import { hashTokenSecret, verifyTokenSecret } from '../../../services/pki/index.ts';

const secret = '0123456789abcdef';

t.test('a secret verifies against its hash, and nothing else does', async (t) => {
  const hash = hashTokenSecret(secret);
  t.match(hash, /^sha256\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
  t.notMatch(hash, secret, 'the secret is not stored');
  t.equal(verifyTokenSecret(secret, hash), true);
  t.equal(verifyTokenSecret('0123456789abcdee', hash), false, 'another secret');
  t.equal(verifyTokenSecret(secret.toUpperCase(), hash), false, 'wrong case');
  t.equal(verifyTokenSecret(`${secret}0`, hash), false, 'too long');
});

t.test('equal secrets hash differently (random salt)', async (t) => {
  const a = hashTokenSecret(secret);
  const b = hashTokenSecret(secret);
  t.not(a, b);
  t.equal(verifyTokenSecret(secret, a), true);
  t.equal(verifyTokenSecret(secret, b), true);
});

t.test('malformed hashes and secrets are false, never a match', async (t) => {
  const hash = hashTokenSecret(secret);
  for (const bad of [
    '',
    hash.toUpperCase(),
    hash.slice(0, -1),
    `${hash}0`,
    hash.replace('sha256$', 'sha1$'),
    undefined as unknown as string,
  ]) {
    t.equal(verifyTokenSecret(secret, bad), false, JSON.stringify(bad));
  }
  t.equal(verifyTokenSecret(undefined as unknown as string, hash), false);
  t.equal(verifyTokenSecret('', hash), false);
});

t.test('only token-shaped secrets are hashed', async (t) => {
  for (const bad of ['', 'short', '0123456789ABCDEF', '0123456789abcde!', `${secret}0`]) {
    t.throws(() => hashTokenSecret(bad), { code: 'INVALID_ARGUMENT' }, bad);
  }
});
