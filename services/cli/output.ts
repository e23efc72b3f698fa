/**
 * How clusteradm prints: `-o table` (default) for people, `-o json` for
 * scripts. JSON is the API's own shape (a list is `{ "items": [...] }`), so a
 * script written against `clusteradm -o json` reads the REST API too.
 */
import { Option } from 'commander';

export const OUTPUT_FORMATS = ['table', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format')
    .choices(OUTPUT_FORMATS)
    .default('table');
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Columns padded to their widest cell, three spaces apart, as kubectl prints. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

/** `Key:   value` lines, values aligned; a nested list is indented under its key. */
export function renderFields(fields: [string, string | [string, string][]][]): string {
  const width = (entries: [string, unknown][]): number =>
    Math.max(...entries.map(([key]) => key.length + 1));
  const outer = width(fields);
  const lines: string[] = [];
  for (const [key, value] of fields) {
    if (typeof value === 'string') {
      lines.push(`${`${key}:`.padEnd(outer)}  ${value}`);
      continue;
    }
    lines.push(`${key}:`);
    const inner = value.length > 0 ? width(value) : 0;
    for (const [subKey, subValue] of value) {
      lines.push(`  ${`${subKey}:`.padEnd(inner)}  ${subValue}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
