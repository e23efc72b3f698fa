#!/usr/bin/env node
// clusterd: the control plane server (services/controlplane/server.ts).
import { loadEntry } from './launch.mjs';

const server = await loadEntry('services/controlplane/server');
await server.main(process.argv.slice(2));
