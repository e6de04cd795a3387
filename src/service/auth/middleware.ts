/**
 * Bearer-key authentication and scope checks for a route: no or unknown key -> 401 (with
 * `WWW-Authenticate`), a valid key without the scope -> 403, over the rate limit -> 429. `admin` holds
 * every scope. The key itself never reaches a log: only its public id does.
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../api/env.js';
import { ServiceError } from '../errors.js';
import type { KeyStore, Principal, Scope } from './keys.js';
import type { RateLimiter } from './rate-limit.js';

export interface AuthDeps {
  keys: KeyStore;
  limiter: RateLimiter | undefined;
}

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="preempt"' };

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.has(scope) || p.scopes.has('admin');
}

export function authenticate(deps: AuthDeps, header: string | undefined): Principal {
  if (!header)
    throw new ServiceError(
      'UNAUTHORIZED',
      'missing API key: send Authorization: Bearer KEY',
      undefined,
      CHALLENGE,
    );
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m?.[1])
    throw new ServiceError(
      'UNAUTHORIZED',
      'malformed Authorization header: expected Bearer KEY',
      undefined,
      CHALLENGE,
    );
  const principal = deps.keys.verify(m[1]);
  if (!principal) throw new ServiceError('UNAUTHORIZED', 'invalid API key', undefined, CHALLENGE);
  return principal;
}

export function requireScope(deps: AuthDeps, scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = authenticate(deps, c.req.header('authorization'));
    if (!hasScope(principal, scope))
      throw new ServiceError('FORBIDDEN', `this key lacks the "${scope}" scope`, { requiredScope: scope });
    c.set('principal', principal);
    if (deps.limiter) {
      const d = await deps.limiter.hit(principal.keyId);
      c.header('RateLimit-Limit', String(d.limit));
      c.header('RateLimit-Remaining', String(d.remaining));
      c.header('RateLimit-Reset', String(Math.ceil(d.resetMs / 1000)));
      if (!d.allowed)
        throw new ServiceError(
          'RATE_LIMITED',
          `rate limit of ${d.limit} requests per window exceeded`,
          undefined,
          {
            'Retry-After': String(Math.ceil(d.resetMs / 1000)),
          },
        );
    }
    await next();
  };
}
