/**
 * `preempt keys create --scopes S1,S2 [--file F]`: mint an API key, append its hash to the keys file and
 * print the key (only the key) on stdout; it is shown once and never stored. `preempt keys list` shows
 * ids, scopes and creation times (never hashes).
 */
import type { Command } from 'commander';
import { appendKeyRecord, mintKey, parseScopes, readKeysFile, SCOPES } from '../../service/auth/keys.js';

function keysFile(file: string | undefined): string {
  const f = file ?? process.env.PREEMPT_KEYS_FILE;
  if (!f) throw new Error('no keys file: pass --file F or set PREEMPT_KEYS_FILE');
  return f;
}

export function register(program: Command): void {
  const keys = program.command('keys').description('manage API keys (stored hashed in the keys file)');
  keys
    .command('create')
    .description(`mint a key; prints only the key on stdout (scopes: ${SCOPES.join(', ')})`)
    .requiredOption('--scopes <list>', 'comma-separated scopes, e.g. score:read,events:write')
    .option('--file <path>', 'keys file (default: PREEMPT_KEYS_FILE)')
    .option('--name <name>', 'a label kept with the hash')
    .action((opts: { scopes: string; file?: string; name?: string }) => {
      const file = keysFile(opts.file);
      const { key, record } = mintKey(parseScopes(opts.scopes), opts.name);
      appendKeyRecord(file, record);
      process.stderr.write(`key ${record.id} (${record.scopes.join(',')}) added to ${file}\n`);
      process.stdout.write(`${key}\n`);
    });
  keys
    .command('list')
    .description('list key ids, scopes and creation times')
    .option('--file <path>', 'keys file (default: PREEMPT_KEYS_FILE)')
    .action((opts: { file?: string }) => {
      for (const r of readKeysFile(keysFile(opts.file)))
        process.stdout.write(
          `${r.id}\t${r.scopes.join(',')}\t${r.createdAt}${r.name ? `\t${r.name}` : ''}\n`,
        );
    });
}
