/**
 * Name rules: node names and labels.
 *
 * A node name becomes part of paths (`/remotedev/<node>/<dev>`), certificate
 * subjects and store keys, so it is an RFC 1123 DNS label: 1-63 characters of
 * lowercase a-z, 0-9 and '-', starting and ending with a letter or digit.
 *
 * Labels follow the simple form of Kubernetes labels: a key is an optional
 * DNS-subdomain prefix and '/', then a name of 1-63 characters; a value is
 * empty or a name. Both checks throw INVALID_ARGUMENT naming the field.
 */
import { AmalgamError } from './errors.ts';

export const NODE_NAME_MAX_LENGTH = 63;
export const LABEL_NAME_MAX_LENGTH = 63;
export const LABEL_PREFIX_MAX_LENGTH = 253;
/** Labels live inside store values; a bound keeps one object far below etcd's request limit. */
export const MAX_LABELS = 64;

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

export type Labels = Record<string, string>;

function invalid(field: string, rule: string, reason: string): AmalgamError {
  return new AmalgamError('INVALID_ARGUMENT', `${field}: ${rule}`, { field, reason });
}

/** True when `name` is a valid node name (an RFC 1123 DNS label). */
export function isValidNodeName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= NODE_NAME_MAX_LENGTH && DNS_LABEL.test(name);
}

/**
 * Throws INVALID_ARGUMENT with `details.field` and `details.reason`
 * ('type' | 'length' | 'format') unless `name` is a valid node name.
 */
export function validateNodeName(name: unknown, field = 'name'): asserts name is string {
  if (typeof name !== 'string') {
    throw invalid(field, 'a string is required', 'type');
  }
  if (name.length === 0 || name.length > NODE_NAME_MAX_LENGTH) {
    throw invalid(field, `1 to ${NODE_NAME_MAX_LENGTH} characters are required`, 'length');
  }
  if (!DNS_LABEL.test(name)) {
    throw invalid(
      field,
      "only lowercase a-z, 0-9 and '-' are allowed, starting and ending with a letter or digit",
      'format',
    );
  }
}

function labelKeyError(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > LABEL_PREFIX_MAX_LENGTH) {
      return `the key prefix must be 1 to ${LABEL_PREFIX_MAX_LENGTH} characters`;
    }
    if (!DNS_SUBDOMAIN.test(prefix)) {
      return 'the key prefix must be a lowercase DNS subdomain';
    }
  }
  if (name.length === 0 || name.length > LABEL_NAME_MAX_LENGTH) {
    return `the key name must be 1 to ${LABEL_NAME_MAX_LENGTH} characters`;
  }
  if (!LABEL_NAME.test(name)) {
    return "the key name allows a-z, A-Z, 0-9, '-', '_' and '.', starting and ending alphanumeric";
  }
  return undefined;
}

function labelValueError(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'a string is required';
  if (value.length === 0) return undefined;
  if (value.length > LABEL_NAME_MAX_LENGTH) {
    return `at most ${LABEL_NAME_MAX_LENGTH} characters are allowed`;
  }
  if (!LABEL_NAME.test(value)) {
    return "only a-z, A-Z, 0-9, '-', '_' and '.' are allowed, starting and ending alphanumeric";
  }
  return undefined;
}

/**
 * Throws INVALID_ARGUMENT unless `labels` is a plain object of at most
 * MAX_LABELS valid key/value pairs. A bad key or value is named as
 * `<field>["<key>"]` in `details.field`.
 */
export function validateLabels(labels: unknown, field = 'labels'): asserts labels is Labels {
  if (
    typeof labels !== 'object' ||
    labels === null ||
    Array.isArray(labels) ||
    (Object.getPrototypeOf(labels) !== Object.prototype && Object.getPrototypeOf(labels) !== null)
  ) {
    throw invalid(field, 'an object of string keys and values is required', 'type');
  }
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) {
    throw invalid(field, `at most ${MAX_LABELS} labels are allowed`, 'length');
  }
  for (const [key, value] of entries) {
    const at = `${field}[${JSON.stringify(key)}]`;
    const keyError = labelKeyError(key);
    if (keyError) throw invalid(at, keyError, 'key');
    const valueError = labelValueError(value);
    if (valueError) throw invalid(at, valueError, 'value');
  }
}

export const SEGMENT_ID_MAX_LENGTH = 253;
const DNS_SUBDOMAIN_LIKE = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/**
 * Segment ids are chosen by the client (so a retried create is idempotent) and
 * end up in store keys: 1-253 characters of lowercase a-z, 0-9, '-' and '.',
 * starting and ending alphanumeric (a UUID qualifies).
 */
export function validateSegmentId(id: unknown, field = 'id'): asserts id is string {
  if (typeof id !== 'string') throw invalid(field, 'a string is required', 'type');
  if (id.length === 0 || id.length > SEGMENT_ID_MAX_LENGTH) {
    throw invalid(field, `1 to ${SEGMENT_ID_MAX_LENGTH} characters are required`, 'length');
  }
  if (!DNS_SUBDOMAIN_LIKE.test(id)) {
    throw invalid(
      field,
      "only lowercase a-z, 0-9, '-' and '.' are allowed, starting and ending with a letter or digit",
      'format',
    );
  }
}
