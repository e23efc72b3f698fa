/**
 * Strict PEM reading: exactly one block of the expected type, nothing else
 * that looks like a block, and a size bound checked before any decoding.
 * The library's own constructors also accept hex and base64 strings; we never
 * hand them text, only the DER we extracted here.
 */
import { x509 } from './x509-provider.ts';

/** Far above any certificate or CSR we issue or accept (they are under 2 KiB). */
export const MAX_PEM_CHARS = 64 * 1024;

/** The DER of the single `type` block in `text`, or undefined when `text` is not exactly that. */
export function decodeSinglePem(text: unknown, type: string): ArrayBuffer | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_PEM_CHARS) {
    return undefined;
  }
  let blocks: ReturnType<typeof x509.PemConverter.decodeWithHeaders>;
  try {
    blocks = x509.PemConverter.decodeWithHeaders(text);
  } catch {
    return undefined;
  }
  const [block] = blocks;
  if (blocks.length !== 1 || block === undefined || block.type !== type) return undefined;
  if (block.headers.length > 0 || block.rawData.byteLength === 0) return undefined;
  return block.rawData;
}

export function encodePem(der: ArrayBuffer, type: string): string {
  return `${x509.PemConverter.encode(der, type)}\n`;
}
