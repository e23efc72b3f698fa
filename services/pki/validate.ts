/**
 * Checks on what the control plane asks to put into a certificate. These are
 * the caller's mistakes (INVALID_ARGUMENT), never the joining machine's: its
 * CSR contributes only a public key.
 */
import { isIP } from 'node:net';
import { AmalgamError } from '../core/errors.ts';

/** Longest subject attribute value we write (a node CN is at most 68 characters). */
export const MAX_NAME_ATTRIBUTE_CHARS = 300;
/** Longest validity we issue: ten years, plus leap days. */
export const MAX_VALIDITY_DAYS = 3653;
/**
 * notBefore is set this far before `now`, so a machine whose clock is a little
 * behind the control plane's accepts a certificate it has just been given.
 */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;

const DAY_MS = 24 * 60 * 60 * 1000;
const DNS_LABEL = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);

function invalid(field: string, detail: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${detail}`, { field });
}

/** A subject attribute value: printable, no control characters, bounded. */
export function requireNameAttribute(value: unknown, field: string): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_NAME_ATTRIBUTE_CHARS ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
    /[\u0000-\u001f\u007f]/.test(value)
  ) {
    throw invalid(
      field,
      `a non-empty string of at most ${MAX_NAME_ATTRIBUTE_CHARS} printable characters is required`,
    );
  }
  return value;
}

export function requireDnsNames(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(field, 'an array of DNS names is required');
  return value.map((name: unknown, i) => {
    if (typeof name !== 'string' || name.length > 253 || !DNS_NAME.test(name)) {
      throw invalid(`${field}[${i}]`, 'a DNS name is required (no wildcards)');
    }
    return name;
  });
}

export function requireIpAddresses(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(field, 'an array of IP addresses is required');
  return value.map((ip: unknown, i) => {
    if (typeof ip !== 'string' || isIP(ip) === 0) {
      throw invalid(`${field}[${i}]`, 'an IPv4 or IPv6 address is required');
    }
    return ip;
  });
}

export function requireNow(value: unknown, field = 'now'): Date {
  if (value === undefined) return new Date();
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw invalid(field, 'a valid Date is required');
  }
  return value;
}

export function requireValidityDays(value: unknown, field = 'validityDays'): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value <= 0 ||
    value > MAX_VALIDITY_DAYS
  ) {
    throw invalid(field, `a number of days in (0, ${MAX_VALIDITY_DAYS}] is required`);
  }
  return value;
}

/** notBefore/notAfter for a certificate issued at `now` for `validityDays`. */
export function validityWindow(
  now: Date,
  validityDays: number,
): { notBefore: Date; notAfter: Date } {
  return {
    notBefore: new Date(now.getTime() - CLOCK_SKEW_ALLOWANCE_MS),
    notAfter: new Date(now.getTime() + Math.round(validityDays * DAY_MS)),
  };
}
