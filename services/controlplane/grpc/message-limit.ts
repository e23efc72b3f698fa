/**
 * The gRPC door's limits (clusterd config `limits`, limits.ts) as grpc-js
 * server options, and a log line plus a stable code for the one refusal
 * grpc-js makes by itself: a message over `grpc.max_receive_message_length`.
 *
 * grpc-js checks a message's length prefix (5 bytes) before it buffers the
 * message, and before any handler (so before the caller is even looked at),
 * and answers RESOURCE_EXHAUSTED. It sends that status from its own base call,
 * past every interceptor, so the interceptor here wraps the base call's
 * `sendStatus` to add the `amalgam-code: PAYLOAD_TOO_LARGE` trailer clients
 * match on, and to log the refusal. Every other status passes unchanged.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CODE_KEY, DETAILS_KEY } from '../../api/grpc-error-codec.ts';
import type { LimitsConfig } from '../limits.ts';

/** Larger than any answer the proto has (a list of every process with its history). */
export const MAX_SEND_MESSAGE_LENGTH = 16 * 1024 * 1024;

export function grpcServerOptions(limits: LimitsConfig): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': limits.grpcMaxReceiveBytes,
    'grpc.max_send_message_length': MAX_SEND_MESSAGE_LENGTH,
    'grpc.max_concurrent_streams': limits.grpcMaxConcurrentStreams,
    'grpc.keepalive_time_ms': limits.grpcKeepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.grpcKeepaliveTimeoutMs,
    'grpc.max_connection_idle_ms': limits.grpcMaxConnectionIdleMs,
  };
}

type SendStatus = grpc.ServerInterceptingCallInterface['sendStatus'];

/** Names the oversize refusal (trailer and log line); see the file comment. */
export function messageLimitInterceptor(logger: Logger, limit: number): grpc.ServerInterceptor {
  return (method, call) => {
    const base = call as grpc.ServerInterceptingCallInterface & { sendStatus: SendStatus };
    const send = base.sendStatus.bind(base);
    base.sendStatus = (status) => {
      const trailers = status.metadata ?? new grpc.Metadata();
      const ours = trailers.get(CODE_KEY).length > 0;
      if (status.code === grpc.status.RESOURCE_EXHAUSTED && !ours) {
        trailers.set(CODE_KEY, 'PAYLOAD_TOO_LARGE');
        trailers.set(DETAILS_KEY, JSON.stringify({ limit }));
        logger.info(
          { code: 'PAYLOAD_TOO_LARGE', method: method.path, limit, peer: call.getPeer() },
          'gRPC message over the limit refused before its handler',
        );
        send({ ...status, metadata: trailers });
        return;
      }
      send(status);
    };
    return new grpc.ServerInterceptingCall(call);
  };
}
