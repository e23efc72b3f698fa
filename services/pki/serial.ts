import { randomBytes } from 'node:crypto';

/**
 * A random 128-bit serial number, in hex. Unpredictable serials are what
 * RFC 5280 and the CA/Browser Forum ask for (at least 64 random bits); the
 * library encodes it as a positive DER INTEGER (a leading zero octet when the
 * top bit is set), so the encoding never exceeds the 20-octet limit.
 */
export function randomSerialNumber(): string {
  return randomBytes(16).toString('hex');
}
