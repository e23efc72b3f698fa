/**
 * services/api/generated/openapi.ts is generated from openapi/amalgam.yaml
 * (`npm run gen:api`) and committed: this fails when it drifts from its source.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
// @ts-expect-error: a plain .mjs script without type declarations
import { generateApiTypes, TARGET } from '../../../scripts/gen-api-types.mjs';

t.test('the generated API types match openapi/amalgam.yaml', async (t) => {
  const fresh: string = await generateApiTypes();
  const committed = readFileSync(TARGET, 'utf8');
  t.ok(committed.startsWith('// @generated'), 'marked generated');
  t.ok(/do not edit/i.test(committed.slice(0, 400)), 'says do not edit');
  t.equal(committed, fresh, 'services/api/generated/openapi.ts is stale: run npm run gen:api');
});
