#!/usr/bin/env node
// clusteragent: the per-node agent (services/agent/main.ts).
import { loadEntry } from './launch.mjs';

const agent = await loadEntry('services/agent/main');
await agent.main(process.argv.slice(2));
