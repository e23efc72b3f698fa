/** What the process supervisor asks of the control plane (the one place it names the client). */
import type { ProcessesApi } from '../../client/index.ts';

export type SupervisorClient = Pick<
  ProcessesApi,
  'get' | 'list' | 'report' | 'reportLoad' | 'listLoads' | 'watch'
>;
