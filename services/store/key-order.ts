/** The order of keys in both backends: etcd's byte order. */

/**
 * Orders keys as etcd does: by their UTF-8 bytes, which is Unicode code point
 * order. JavaScript's `<` compares UTF-16 code units, which puts U+E000..U+FFFF
 * after astral characters; this corrects exactly that case.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

function codeUnitRank(unit: number): number {
  // Surrogates (astral characters) sort after every BMP character.
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
