/**
 * Every watchable root and how its events get their values: one entry per
 * root, exported by the feature's records.ts (see watch-view.ts). Tokens
 * (secret hashes) are never among them.
 */
import { deviceWatchViews } from '../features/devices/records.ts';
import { memoryWatchViews } from '../features/memory/records.ts';
import { nodeWatchViews } from '../features/nodes/records.ts';
import { processWatchView } from '../features/processes/records.ts';
import type { WatchViews } from './watch-view.ts';

export const WATCH_VIEWS: WatchViews = [
  ...nodeWatchViews,
  ...memoryWatchViews,
  ...deviceWatchViews,
  processWatchView,
];
