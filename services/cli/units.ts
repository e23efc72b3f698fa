/**
 * The units clusteradm reads and prints: byte sizes (`64Mi`, `1Gi`, `500M`,
 * `4096`), durations (`24h`, `1h30m`, `7d`, `90`), addresses and ages.
 * Parsers throw `InvalidArgumentError` so commander reports them as usage
 * errors naming the option.
 */
import { InvalidArgumentError } from 'commander';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

const SIZE = /^(\d+(?:\.\d+)?)([kKMGTP]i?)?B?$/;

/**
 * Bytes from `<number>[unit][B]`: binary units Ki Mi Gi Ti Pi, decimal k M G T
 * P, no unit = bytes. The result must be a whole, safe number of bytes.
 */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  const unit = SIZE_UNITS[match?.[2] ?? ''];
  if (!match || unit === undefined) {
    throw new InvalidArgumentError(
      `not a size: ${JSON.stringify(text)} (examples: 4096, 64Mi, 1.5Gi, 500M)`,
    );
  }
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new InvalidArgumentError(
      `not a whole number of bytes below 2^53: ${JSON.stringify(text)}`,
    );
  }
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:\d+[smhd])+$/;

/** Whole seconds from `90`, `90s`, `15m`, `24h`, `7d` or a sum like `1h30m`; at least 1. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let seconds: number;
  if (/^\d+$/.test(trimmed)) {
    seconds = Number(trimmed);
  } else if (DURATION.test(trimmed)) {
    seconds = 0;
    for (const [, amount, unit] of trimmed.matchAll(/(\d+)([smhd])/g)) {
      seconds += Number(amount) * (DURATION_UNITS[unit as string] as number);
    }
  } else {
    throw new InvalidArgumentError(
      `not a duration: ${JSON.stringify(text)} (examples: 90s, 15m, 24h, 7d, 1h30m)`,
    );
  }
  if (!Number.isSafeInteger(seconds) || seconds < 1) {
    throw new InvalidArgumentError(
      `a duration of at least 1s is required: ${JSON.stringify(text)}`,
    );
  }
  return seconds;
}

const BINARY_UNITS: [string, number][] = [
  ['Pi', 2 ** 50],
  ['Ti', 2 ** 40],
  ['Gi', 2 ** 30],
  ['Mi', 2 ** 20],
  ['Ki', 2 ** 10],
];

/** `64Mi`, `1.5Gi`, `512`: the largest binary unit, at most one decimal, exact when it divides. */
export function formatBytes(bytes: number): string {
  for (const [name, size] of BINARY_UNITS) {
    if (bytes >= size) {
      const value = bytes / size;
      const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
      return `${text}${name}`;
    }
  }
  return String(bytes);
}

export function formatAddress(address: number): string {
  return `0x${address.toString(16)}`;
}

/** `[start, end)` of a range, in hex. */
export function formatRange(range: { start: number; size: number }): string {
  return `${formatAddress(range.start)}-${formatAddress(range.start + range.size)}`;
}

/** kubectl-style age: `45s`, `12m`, `5h`, `3d`. */
export function formatAge(fromIso: string, now: number): string {
  const then = Date.parse(fromIso);
  if (Number.isNaN(then)) return '-';
  const seconds = Math.max(0, Math.floor((now - then) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 120 * 60) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** `in 23h` / `expired` for an expiry time. */
export function formatExpiry(atIso: string, now: number): string {
  const at = Date.parse(atIso);
  if (Number.isNaN(at)) return '-';
  if (at <= now) return 'expired';
  return `in ${formatAge(new Date(now).toISOString(), at)}`;
}
