/**
 * Every REST handler, by operationId of openapi/amalgam.yaml: each feature's
 * routes (features/<feature>/*-routes.ts), then the cluster-wide ones (the
 * cluster, the watch, health and documents). app.ts refuses to start when this
 * list and the document's operations do not match. What a handler is:
 * route.ts.
 */
import { AmalgamError } from '../../core/errors.ts';
import { deviceRoutes } from '../features/devices/device-routes.ts';
import { memoryRoutes } from '../features/memory/memory-routes.ts';
import { nodeRoutes } from '../features/nodes/node-routes.ts';
import { processRoutes } from '../features/processes/process-routes.ts';
import { tokenRoutes } from '../features/tokens/token-routes.ts';
import { userRoutes } from '../features/users/user-routes.ts';
import { json, NDJSON_TYPE, type Routes } from './route.ts';

export type { Handler, HandlerContext, HandlerResult, ItemStream } from './route.ts';
export { NDJSON_TYPE } from './route.ts';

const clusterRoutes: Routes = {
  getCluster: async ({ runtime, caller }) => json(200, await runtime.cluster.info(caller)),

  watchResources: async ({ runtime, caller, query }) => {
    const { prefix, fromRevision } = query;
    // The schema makes prefix present and fromRevision a decimal of at most 15 digits.
    const watch = runtime.watch.open(caller, {
      prefix: prefix ?? '',
      ...(fromRevision === undefined ? {} : { fromRevision: Number(fromRevision) }),
    });
    return { status: 200, contentType: NDJSON_TYPE, stream: watch };
  },

  getHealth: async () => json(200, { status: 'ok' }),
  getReadiness: async ({ runtime }) => {
    const ready = await runtime.ready().catch(() => false);
    if (!ready) throw new AmalgamError('NO_QUORUM', 'the store did not answer a read');
    return json(200, { status: 'ready' });
  },
  getMetrics: async ({ registry }) => ({
    status: 200,
    body: await registry.metrics(),
    contentType: registry.contentType,
  }),
  getOpenApi: async ({ pages }) => ({
    status: 200,
    body: pages.openApiJson,
    contentType: 'application/json; charset=utf-8',
  }),
  getDocs: async ({ pages }) => ({
    status: 200,
    body: pages.docsHtml,
    contentType: 'text/html; charset=utf-8',
  }),
};

/** The features' routes; a new feature adds its `*Routes` here. */
const featureRoutes: Routes[] = [
  tokenRoutes,
  userRoutes,
  nodeRoutes,
  memoryRoutes,
  deviceRoutes,
  processRoutes,
];

export const handlers: Routes = Object.assign({}, ...featureRoutes, clusterRoutes);
