/**
 * Graceful shutdown on SIGTERM / SIGINT: close the handles in order (stop accepting, drain, close workers,
 * flush, disconnect), then exit 0; a second signal, or a drain longer than the grace period, exits 1.
 */
import type { Logger } from 'pino';

export interface Closable {
  close(): Promise<void>;
}

/** ms allowed for the drain */
export const SHUTDOWN_GRACE_MS = 30_000;

export function closeOnSignals(handles: readonly Closable[], log: Logger, after?: () => Promise<void>): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    closing = true;
    log.info({ signal }, 'shutting down: draining');
    const timer = setTimeout(() => {
      log.error({ graceMs: SHUTDOWN_GRACE_MS }, 'drain took too long: exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    timer.unref();
    void (async () => {
      for (const h of handles)
        await h.close().catch((e: unknown) => log.error({ err: (e as Error).message }, 'close failed'));
      await after?.();
      log.info('stopped');
      log.flush?.();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
