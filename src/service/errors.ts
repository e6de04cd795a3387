/**
 * The service's error vocabulary: one code enum, one code-to-status map, one `ServiceError` class and one
 * handler that turns anything thrown inside a route into `{code, message, requestId}` with the right
 * status. Unexpected errors are logged with their stack and answered with a generic 500 (no internals leak).
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';

export const ERROR_CODES = {
  BAD_REQUEST: 400,
  INVALID_EVENT: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  REDIS_UNAVAILABLE: 503,
  MODEL_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** extra machine-readable detail merged into the response body (e.g. index and field) */
    readonly detail?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ServiceError';
  }

  get status(): ContentfulStatusCode {
    return ERROR_CODES[this.code];
  }
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  requestId: string;
  [detail: string]: unknown;
}

function isRedisDown(err: Error): boolean {
  const m = err.message;
  return (
    /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|Connection is closed|enableOfflineQueue|Stream isn't writeable/.test(
      m,
    ) || (err as { code?: unknown }).code === 'REDIS_UNAVAILABLE'
  );
}

/** Map any thrown value to a ServiceError (the one place this decision is made). */
export function toServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 413
        ? 'PAYLOAD_TOO_LARGE'
        : status === 401
          ? 'UNAUTHORIZED'
          : status === 403
            ? 'FORBIDDEN'
            : status === 404
              ? 'NOT_FOUND'
              : status < 500
                ? 'BAD_REQUEST'
                : 'INTERNAL';
    return new ServiceError(code, err.message || code.toLowerCase().replace(/_/g, ' '));
  }
  if (err instanceof Error && isRedisDown(err))
    return new ServiceError('REDIS_UNAVAILABLE', 'the shared state (Redis) is unreachable; retry shortly');
  return new ServiceError('INTERNAL', 'internal error');
}

export function errorResponse(c: Context, err: ServiceError): Response {
  const body: ErrorBody = {
    ...(err.detail ?? {}),
    code: err.code,
    message: err.message,
    requestId: c.get('requestId') ?? 'unknown',
  };
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
  return c.json(body, err.status);
}

export function makeOnError(log: Logger) {
  return (err: Error, c: Context): Response => {
    const mapped = toServiceError(err);
    if (mapped.status >= 500)
      log.error(
        { err, requestId: c.get('requestId'), path: c.req.path, code: mapped.code },
        'request failed',
      );
    return errorResponse(c, mapped);
  };
}
