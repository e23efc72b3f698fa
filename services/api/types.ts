/**
 * The requests, responses and views of the public API, as named in
 * `components.schemas` of openapi/amalgam.yaml. They are aliases of the types
 * openapi-typescript generates from the document (generated/openapi.ts, `npm
 * run gen:api`), so the document is the one source of every shape: change the
 * YAML, regenerate, and the compiler shows every place that must follow.
 */
import type { components } from './generated/openapi.ts';

type Schemas = components['schemas'];

// ---- cluster and tokens ----
export type ClusterInfo = Schemas['ClusterInfo'];
export type TokenUsage = Schemas['TokenUsage'];
export type TokenView = Schemas['TokenView'];
export type CreateTokenRequest = Schemas['CreateTokenRequest'];
export type CreatedToken = Schemas['CreatedToken'];

// ---- users ----
export type UserRole = Schemas['UserRole'];
export type UserView = Schemas['UserView'];
export type CreateUserRequest = Schemas['CreateUserRequest'];
export type CreatedUser = Schemas['CreatedUser'];

// ---- nodes ----
export type NodeState = Schemas['NodeState'];
export type NodeCapacity = Schemas['NodeCapacity'];
export type LoadReport = Schemas['LoadReport'];
/** Where a node's page server listens, as the node itself reports it on its heartbeats. */
export type PageServerEndpoint = Schemas['PageServerEndpoint'];
/** The REST heartbeat body: a LoadReport's fields plus, once it is up, the page server. */
export type HeartbeatRequest = Schemas['HeartbeatRequest'];
export type NodeView = Schemas['NodeView'];
export type JoinRequest = Schemas['JoinRequest'];
export type JoinResult = Schemas['JoinResult'];

// ---- memory ----
export type SegmentView = Schemas['SegmentView'];
export type AllocateSegmentRequest = Schemas['AllocateSegmentRequest'];
export type MemoryLayoutView = Schemas['MemoryLayoutView'];

// ---- devices ----
/** One device of `/remotedev/<node>/<name>`, as every member sees it. */
export type DeviceView = Schemas['DeviceView'];
/** The body of a node's inventory report: every device it has now. */
export type DeviceInventory = Schemas['DeviceInventory'];
export type SetExportRequest = Schemas['SetExportRequest'];

// ---- watch ----
export type ResourceEvent = Schemas['ResourceEvent'];
export type NodeLiveness = Schemas['NodeLiveness'];

// ---- processes ----
export type ProcessView = Schemas['ProcessView'];
export type ClaimPidBlockRequest = Schemas['ClaimPidBlockRequest'];
export type CreateProcessRequest = Schemas['CreateProcessRequest'];
export type MigrateProcessRequest = Schemas['MigrateProcessRequest'];
export type ProcessReport = Schemas['ProcessReport'];
export type ProcessReportEvent = ProcessReport['event'];
export type ProcessLoadReport = Schemas['ProcessLoadReport'];
export type ProcessLoadView = Schemas['ProcessLoadView'];
