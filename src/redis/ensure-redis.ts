/**
 * Finding a Redis to talk to: the one named by REDIS_URL, else the conventional 127.0.0.1:6379, else a
 * private `redis-server` started on a free loopback port (when the binary is installed). Used by the test
 * harness and by `preempt start`, so both behave the same way on a machine without a running Redis.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export const HOW_TO_GET_REDIS =
  'No Redis is reachable and no `redis-server` binary is installed. Either point REDIS_URL at a running ' +
  'Redis 6.2+ (e.g. REDIS_URL=redis://host:6379), start one (`redis-server --port 6379`), or install it: ' +
  '`sudo apt-get install -y redis-server` on Debian/Ubuntu, `brew install redis` on macOS.';

export class RedisUnavailableError extends Error {
  readonly code = 'REDIS_UNAVAILABLE';
}

/** PING a Redis once, without retries. Resolves true when it answers PONG within `timeoutMs`. */
export async function pingRedis(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export function redisServerBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisHandle {
  url: string;
  /** how it was found: named by REDIS_URL, the default local one, or a private server we started */
  source: 'env' | 'default' | 'private';
  stop(): Promise<void>;
}

async function startPrivateRedis(binary: string): Promise<RedisHandle> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'preempt-redis-'));
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await pingRedis(url, 500)) {
      return {
        url,
        source: 'private',
        stop: async () => {
          if (child.exitCode === null) {
            const exited = new Promise<void>((r) => child.once('exit', () => r()));
            child.kill('SIGTERM');
            await exited;
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  throw new RedisUnavailableError(`started ${binary} on port ${port} but it never answered PING`);
}

/**
 * Resolve a reachable Redis. An explicit REDIS_URL that does not answer is an error (we never silently
 * use another server than the one the operator named).
 */
export async function ensureRedis(env: NodeJS.ProcessEnv = process.env): Promise<RedisHandle> {
  const named = env.REDIS_URL?.trim();
  if (named) {
    if (await pingRedis(named)) return { url: named, source: 'env', stop: async () => {} };
    throw new RedisUnavailableError(
      `REDIS_URL=${redactUrl(named)} does not answer PING. ${HOW_TO_GET_REDIS}`,
    );
  }
  if (await pingRedis(DEFAULT_REDIS_URL))
    return { url: DEFAULT_REDIS_URL, source: 'default', stop: async () => {} };
  const binary = redisServerBinary();
  if (!binary) throw new RedisUnavailableError(HOW_TO_GET_REDIS);
  return startPrivateRedis(binary);
}

/** Hide a password in a redis URL before it reaches a log or an error message. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
