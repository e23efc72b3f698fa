/**
 * The request validators of the contract: one ajv, with every shared schema of
 * openapi/amalgam.yaml, compiles each operation's params, query and body
 * schema once. REST uses them as fastify's validator compiler (app.ts) and
 * the gRPC door runs the same functions on the decoded message mapped to the
 * operation's params and body (grpc/operations.ts), so both doors refuse the
 * same input with the same INVALID_ARGUMENT and `field`.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import formatsPlugin from 'ajv-formats';
import type { AmalgamError } from '../../core/errors.ts';
import type { JsonSchema, Operation, RestApi } from './openapi.ts';
import { validationError } from './problem.ts';

// ajv-formats is CommonJS with `exports.default`; under NodeNext its default import is the module.
const addFormats = ((formatsPlugin as unknown as { default?: typeof formatsPlugin }).default ??
  formatsPlugin) as unknown as (ajv: Ajv) => Ajv;

/** The parts of a request that have a schema, named as fastify names them. */
export interface RequestParts {
  params?: Record<string, string>;
  querystring?: Record<string, string>;
  body?: unknown;
}

type Part = keyof RequestParts;
const PARTS: readonly Part[] = ['params', 'querystring', 'body'];

function schemaOf(op: Operation, part: Part): JsonSchema | undefined {
  if (part === 'params') return op.params;
  if (part === 'querystring') return op.query;
  return op.body?.schema;
}

/** One ajv for a document: its shared schemas, and every schema compiled once. */
export class ContractAjv {
  readonly ajv: Ajv;
  private readonly compiled = new WeakMap<JsonSchema, ValidateFunction>();

  constructor(api: RestApi) {
    // No coercion, no defaults, nothing removed: what is sent is what is checked.
    this.ajv = new Ajv({
      strict: true,
      allErrors: false,
      coerceTypes: false,
      useDefaults: false,
      removeAdditional: false,
    });
    addFormats(this.ajv);
    for (const schema of api.sharedSchemas) this.ajv.addSchema(schema);
  }

  compile(schema: JsonSchema): ValidateFunction {
    let validate = this.compiled.get(schema);
    if (!validate) {
      validate = this.ajv.compile(schema);
      this.compiled.set(schema, validate);
    }
    return validate;
  }
}

export class RequestValidators {
  private readonly byOperation = new Map<string, Operation>();

  constructor(
    api: RestApi,
    readonly contract: ContractAjv = new ContractAjv(api),
  ) {
    for (const op of api.operations) {
      this.byOperation.set(op.operationId, op);
      for (const part of PARTS) {
        const schema = schemaOf(op, part);
        if (schema) contract.compile(schema);
      }
    }
  }

  /** fastify's validator compiler: the same compiled function for the same schema object. */
  readonly fastifyCompiler = ({ schema }: { schema: unknown }) =>
    this.contract.compile(schema as JsonSchema);

  /** The INVALID_ARGUMENT the request earns, naming its first bad field; undefined when valid. */
  check(operationId: string, parts: RequestParts): AmalgamError | undefined {
    const op = this.byOperation.get(operationId);
    if (!op) throw new Error(`no operation ${operationId} in the document`);
    for (const part of PARTS) {
      const schema = schemaOf(op, part);
      if (!schema) continue;
      const validate = this.contract.compile(schema);
      if (!validate(parts[part] ?? (part === 'body' ? undefined : {}))) {
        return validationError({ validation: validate.errors ?? [], validationContext: part });
      }
    }
    return undefined;
  }
}

const perDocument = new WeakMap<RestApi, RequestValidators>();

/** The validators of a document, compiled once per process and shared by both doors. */
export function requestValidatorsFor(api: RestApi): RequestValidators {
  let validators = perDocument.get(api);
  if (!validators) {
    validators = new RequestValidators(api);
    perDocument.set(api, validators);
  }
  return validators;
}
