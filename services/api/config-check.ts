/**
 * Config files (clusterd's, the agent's, the CLI's) are checked against a
 * JSON Schema with ajv, and the first problem is named by its field
 * (`listen.port`, `store.endpoints[1]`) so that every parser reports bad
 * input the same way. Each service keeps its schema next to its parser
 * (`config-schema.ts`) and what no schema can say (relative paths, names
 * listed twice) in code.
 */
import { Ajv, type ErrorObject } from 'ajv';

export type ConfigSchema = Record<string, unknown>;

export interface ConfigIssue {
  /** `a.b[0]`; `config` for the file as a whole. */
  field: string;
  /** What is wrong, in words, without the field. */
  message: string;
}

/** `/store/endpoints/1` + `x` -> `store.endpoints[1].x`. */
function fieldOf(pointer: string, child?: string): string {
  const parts = pointer.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  let field = '';
  for (const raw of parts) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) field += `[${part}]`;
    else field += field === '' ? part : `.${part}`;
  }
  return field === '' ? 'config' : field;
}

function issueOf(error: ErrorObject): ConfigIssue {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required') {
    return {
      field: fieldOf(error.instancePath, String(params.missingProperty)),
      message: 'is required',
    };
  }
  if (error.keyword === 'additionalProperties') {
    return {
      field: fieldOf(error.instancePath, String(params.additionalProperty)),
      message: 'not a known field',
    };
  }
  const field = fieldOf(error.instancePath);
  if (error.keyword === 'false schema') return { field, message: 'not allowed here' };
  // A schema's description says what is required, in the words the docs use.
  const description = (error.parentSchema as { description?: unknown } | undefined)?.description;
  if (typeof description === 'string') return { field, message: description };
  return { field, message: error.message ?? 'is not valid' };
}

/** Where a top-level field is in the schema's `properties`: the documented order. */
function rankOf(schema: ConfigSchema, field: string): number {
  if (field === 'config') return -1;
  const top = /^[^.[]*/.exec(field)?.[0] ?? '';
  const names = Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {});
  const index = names.indexOf(top);
  return index === -1 ? names.length : index;
}

// Strict, but a conditional (`if`/`then`) may require what the outer schema declares.
const ajv = new Ajv({
  strict: true,
  strictRequired: false,
  strictTypes: false,
  allErrors: true,
  // parentSchema in errors: its description is the message.
  verbose: true,
  coerceTypes: false,
  useDefaults: false,
});

/**
 * A checker for one schema: undefined when the value is valid, else its
 * problem in the field that comes first in the schema (the order the file is
 * documented in), whatever order ajv checks the keywords in.
 */
export function compileConfigSchema(
  schema: ConfigSchema,
): (value: unknown) => ConfigIssue | undefined {
  const validate = ajv.compile(schema);
  return (value) => {
    if (validate(value)) return undefined;
    const issues = (validate.errors ?? []).map(issueOf);
    let first: ConfigIssue | undefined;
    for (const issue of issues) {
      if (!first || rankOf(schema, issue.field) < rankOf(schema, first.field)) first = issue;
    }
    return first ?? { field: 'config', message: 'is not valid' };
  };
}
