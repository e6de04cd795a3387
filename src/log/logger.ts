/**
 * The process logger: pino JSON on stderr (stdout stays free for command output). Level from
 * PREEMPT_LOG_LEVEL (default `info`; `silent` in tests unless set).
 */
import { pino } from 'pino';

const level = process.env.PREEMPT_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');

export const logger = pino(
  { level, redact: ['authorization', '*.authorization', '*.apiKey', '*.secret'] },
  pino.destination(2),
);

export type Logger = typeof logger;
