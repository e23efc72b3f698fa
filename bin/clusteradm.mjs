#!/usr/bin/env node
// clusteradm: the cluster's admin CLI (services/cli).
import { loadEntry } from './launch.mjs';

const cli = await loadEntry('services/cli/main');
process.exitCode = await cli.runClusteradm(process.argv.slice(2));
