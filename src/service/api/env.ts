/**
 * The Hono environment shared by every route: per-request variables set by the middleware.
 */
import type { Principal } from '../auth/keys.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    /** set by the auth middleware on routes that require a key */
    principal: Principal | undefined;
  };
}
