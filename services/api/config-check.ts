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
  const description = (error.parentSchema as { description?: unknown } | undefined)?.description;
  if (error.keyword === 'false schema') return { field, message: 'not allowed here' };
  if (typeof description === 'string')
    return { field, message: `${error.message}: ${description}` };
  return { field, message: error.message ?? 'is not valid' };
}

// Strict, but a conditional (`if`/`then`) may require what the outer schema declares.
const ajv = new Ajv({
  strict: true,
  strictRequired: false,
  strictTypes: false,
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
});

/** A checker for one schema: undefined when the value is valid, else its first problem. */
export function compileConfigSchema(
  schema: ConfigSchema,
): (value: unknown) => ConfigIssue | undefined {
  const validate = ajv.compile(schema);
  return (value) => {
    if (validate(value)) return undefined;
    const [first] = validate.errors ?? [];
    return first ? issueOf(first) : { field: 'config', message: 'is not valid' };
  };
}
