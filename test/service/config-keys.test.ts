/**
 * The environment schema (defaults, clear errors, no secrets echoed) and the API keys (only hashes
 * stored, verification, scopes, keys added while running).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  appendKeyRecord,
  hashKey,
  KeyStore,
  mintKey,
  parseScopes,
  readKeysFile,
} from '../../src/service/auth/keys.js';
import { ConfigError, configFor, loadConfig } from '../../src/service/config.js';

const dir = mkdtempSync(join(tmpdir(), 'preempt-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 8080,
      PREEMPT_MODEL_DIR: 'models/default',
      PREEMPT_PREFIX: 'preempt',
      PREEMPT_VENUE: 'simulated',
      PREEMPT_SHARDS: 1,
    });
    expect(c.REDIS_URL).toBeUndefined();
    expect(c.PREEMPT_POLICY).toEqual({});
  });

  it('names every bad variable, without echoing secrets or URL passwords', () => {
    let err: unknown;
    try {
      loadConfig({
        PORT: '80a',
        REDIS_URL: 'http://:hunter2@host:6379/',
        PREEMPT_POLICY: '[1]',
        PREEMPT_WEBHOOK_SECRET: 'short',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as ConfigError).message;
    expect((err as ConfigError).problems.map((p) => p.split(':')[0])).toEqual([
      'PORT',
      'REDIS_URL',
      'PREEMPT_WEBHOOK_SECRET',
      'PREEMPT_POLICY',
    ]);
    expect(msg).not.toContain('hunter2');
    expect(msg).not.toContain('short');
  });

  it('requires the webhook URL and secret when the webhook venue is chosen', () => {
    expect(() => configFor({ PREEMPT_VENUE: 'webhook' })).toThrow(/PREEMPT_WEBHOOK_URL: required/);
    const c = configFor({
      PREEMPT_VENUE: 'webhook',
      PREEMPT_WEBHOOK_URL: 'https://venue.example/reduce',
      PREEMPT_WEBHOOK_SECRET: 's'.repeat(32),
    });
    expect(c.PREEMPT_VENUE).toBe('webhook');
  });

  it('parses policy thresholds as JSON, and refuses an unknown or invalid one with the rest of the config', () => {
    expect(configFor({ PREEMPT_POLICY: '{"pdReduce":0.3}' }).PREEMPT_POLICY).toEqual({ pdReduce: 0.3 });
    // a misspelt threshold used to be ignored (the default stayed in force); an invalid one threw only after
    // Redis and the model were up, and the process stayed alive
    expect(() => configFor({ PREEMPT_POLICY: '{"pdReduc":0.3}' })).toThrow(
      /PREEMPT_POLICY: .*no field "pdReduc"/,
    );
    expect(() => configFor({ PREEMPT_POLICY: '{"pdReduce":5}' })).toThrow(
      /PREEMPT_POLICY: .*pdReduce must be/,
    );
  });

  it('refuses a leverage cap, which the service does not deliver to the venue (backtests only)', () => {
    expect(() => configFor({ PREEMPT_POLICY: '{"leverageCapAfterReduce":10}' })).toThrow(
      /PREEMPT_POLICY: .*leverage caps .* are not delivered to the venue/,
    );
    expect(() => configFor({ PREEMPT_POLICY: '{"leverageCapFollowsReduce":true}' })).toThrow(
      /PREEMPT_POLICY: .*leverage caps .* are not delivered to the venue/,
    );
    expect(configFor({ PREEMPT_POLICY: '{"leverageCapAfterReduce":0}' }).PREEMPT_POLICY).toEqual({
      leverageCapAfterReduce: 0,
    });
  });
});

describe('API keys', () => {
  it('stores only the hash, and verifies the key and its scopes', () => {
    const file = join(dir, 'k1.jsonl');
    const { key, record } = mintKey(parseScopes('score:read,events:write'), 'risk engine');
    appendKeyRecord(file, record);
    const stored = readFileSync(file, 'utf8');
    // the secret is base64url and may itself contain '_': take everything after the `pk_<id>_` prefix
    const secret = key.slice(`pk_${record.id}_`.length);
    expect(secret.length).toBe(43);
    expect(stored).not.toContain(secret);
    expect(stored).toContain(hashKey(key));
    const store = KeyStore.fromFile(file);
    expect([...(store.verify(key)?.scopes ?? [])].sort()).toEqual(['events:write', 'score:read']);
    expect(store.verify(`${key}x`)).toBeUndefined();
    expect(store.verify(`pk_0000000000000000_${'A'.repeat(43)}`)).toBeUndefined();
    expect(store.verify('')).toBeUndefined();
  });

  it('picks up keys created while running', () => {
    const file = join(dir, 'k2.jsonl');
    appendKeyRecord(file, mintKey(['admin']).record);
    const store = KeyStore.fromFile(file);
    const later = mintKey(['score:read']);
    appendKeyRecord(file, later.record);
    expect(store.verify(later.key, Date.now() + 5000)?.keyId).toBe(later.record.id);
    expect(readKeysFile(file)).toHaveLength(2);
  });

  it('refuses unknown scopes and malformed key files', () => {
    expect(() => parseScopes('admin,root')).toThrow(/unknown scope "root"/);
    expect(() => parseScopes(' , ')).toThrow(/no scopes/);
    const file = join(dir, 'bad.jsonl');
    appendKeyRecord(file, { ...mintKey(['admin']).record, hash: 'not-a-hash' });
    expect(() => KeyStore.fromFile(file)).toThrow(/line 1: hash invalid/);
  });
});
