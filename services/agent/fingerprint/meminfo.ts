/** /proc/meminfo, which counts in kB (meaning KiB). */

/** Every `Name: N kB` line of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const match of text.matchAll(/^([A-Za-z0-9_()]+):[ \t]+(\d+)[ \t]*(kB)?[ \t]*$/gm)) {
    const [, name, value, kb] = match;
    if (name && value) fields.set(name, Number(value) * (kb ? 1024 : 1));
  }
  return fields;
}

export function meminfoField(fields: Map<string, number>, name: string): number {
  const value = fields.get(name);
  if (value === undefined) throw new Error(`/proc/meminfo has no ${name} line`);
  return value;
}
