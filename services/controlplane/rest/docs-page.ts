/**
 * GET /docs: a self-contained HTML page of the OpenAPI document (operations,
 * who may call them, bodies, answers and error codes; then every schema). No
 * script, no stylesheet or font from the network: clusterd often runs where
 * there is no Internet, and a docs page must not become a way to load code.
 */
import type { RestApi } from './openapi.ts';

function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** `X#` (a rewritten reference) as a link to the schema's section. */
function schemaLink(schema: unknown): string {
  if (typeof schema === 'object' && schema !== null && '$ref' in schema) {
    const name = String((schema as { $ref: unknown }).$ref).replace(/#$/, '');
    return `<a href="#schema-${escapeHtml(name)}">${escapeHtml(name)}</a>`;
  }
  return schema === undefined ? '' : `<code>${escapeHtml(JSON.stringify(schema))}</code>`;
}

const CALLERS: Record<string, string> = {
  anonymous: 'anyone',
  token: 'anyone with a bootstrap token',
  member: 'any node or the admin',
  admin: 'the admin',
  self: 'the node itself',
};

export function renderDocsPage(api: RestApi): string {
  const info = (api.document.info ?? {}) as {
    title?: string;
    version?: string;
    description?: string;
  };
  const rows = api.operations.map((op) => {
    const responses = op.responses
      .map((r) => {
        const what = r.errorCodes.length > 0 ? r.errorCodes.join(', ') : schemaLink(r.schema);
        return `<li><b>${r.status}</b> ${what}</li>`;
      })
      .join('');
    return `<tr id="op-${escapeHtml(op.operationId)}">
<td><code>${escapeHtml(op.method)} ${escapeHtml(op.path)}</code><br><small>${escapeHtml(op.operationId)}</small></td>
<td>${escapeHtml(CALLERS[op.caller] ?? op.caller)}</td>
<td>${op.body ? schemaLink(op.body.schema) : ''}</td>
<td><ul>${responses}</ul></td></tr>`;
  });
  const schemas = api.sharedSchemas.map(({ $id, ...schema }) => {
    const id = escapeHtml($id);
    return `<h3 id="schema-${id}">${id}</h3><pre>${escapeHtml(JSON.stringify(schema, null, 2))}</pre>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title ?? 'API')} ${escapeHtml(info.version ?? '')}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}
ul{margin:0;padding-left:1.2em}pre{background:#f6f6f6;padding:.6em;overflow:auto}code{font-size:13px}
</style></head><body>
<h1>${escapeHtml(info.title ?? 'API')} <small>${escapeHtml(info.version ?? '')}</small></h1>
<p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>.</p>
<pre>${escapeHtml(info.description ?? '')}</pre>
<h2>Operations</h2>
<table><thead><tr><th>operation</th><th>caller</th><th>body</th><th>answers</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>
<h2>Schemas</h2>
${schemas.join('\n')}
</body></html>
`;
}
