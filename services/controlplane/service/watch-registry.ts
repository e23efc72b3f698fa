/**
 * Every watchable root and how its events get their values: one entry per
 * root, exported by the feature's records.ts (see watch-view.ts). Tokens
 * (secret hashes) are never among them.
 */
import { deviceWatchViews } from '../features/devices/records.ts';
import { memoryWatchViews } from '../features/memory/records.ts';
import { nodeWatchViews } from '../features/nodes/records.ts';
import type { WatchView, WatchViews } from './watch-view.ts';

/**
 * TODO(processes feature): replace with the processes feature's entry from
 * features/processes/records.ts (`processes/<cpid>` -> ProcessView). Until
 * then its values pass through as stored (a ProcessRecord is its view today).
 */
const processesAsStored: WatchView = { root: 'processes/', view: (_key, raw) => JSON.parse(raw) };

export const WATCH_VIEWS: WatchViews = [
  ...nodeWatchViews,
  ...memoryWatchViews,
  ...deviceWatchViews,
  processesAsStored,
];
