/**
 * Finding and reading a scenario: a bare name (`calm`, `ftx-2022`) is `scenarios/NAME.json` of this
 * repository, anything else is a path. Data files named in it resolve relative to the scenario file, or
 * with a `shared:` prefix to the real-data folder (PREEMPT_MARKET_DATA, default ../shared/data/market).
 * A scenario may name a template (`"extends": "templates/FILE.json"`, relative to the scenario file): the
 * template's fields apply where the scenario gives none, with `{name}` in its strings replaced by the
 * scenario's name, so that days over the same instruments share one description of them.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Scenario, ScenarioSchema } from './schema.js';

export const SCENARIOS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../scenarios');

export class ScenarioError extends Error {
  constructor(
    readonly code: 'SCENARIO_NOT_FOUND' | 'SCENARIO_INVALID' | 'SCENARIO_DATA',
    message: string,
  ) {
    super(message);
    this.name = 'ScenarioError';
  }
}

export interface LoadedScenario {
  scenario: Scenario;
  /** directory relative data paths resolve against */
  dir: string;
  /** where it was read from */
  source: string;
  /** the template it extends, as the file names it (relative to the file); absent: none */
  template?: string;
}

export function namedScenarios(): string[] {
  if (!existsSync(SCENARIOS_DIR)) return [];
  return readdirSync(SCENARIOS_DIR)
    .filter((f) => f.endsWith('.json') && f !== 'fitted-params.json')
    .map((f) => f.replace(/\.json$/, ''))
    .sort();
}

export function parseScenario(raw: unknown, source: string, dir: string): LoadedScenario {
  const res = ScenarioSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(scenario)';
    throw new ScenarioError('SCENARIO_INVALID', `${source}: field ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return { scenario: res.data, dir, source };
}

export function loadScenario(nameOrPath: string): LoadedScenario {
  const isName = /^[a-z0-9][a-z0-9-]*$/i.test(nameOrPath) && !existsSync(nameOrPath);
  const path = isName ? join(SCENARIOS_DIR, `${nameOrPath}.json`) : resolve(nameOrPath);
  if (!existsSync(path))
    throw new ScenarioError(
      'SCENARIO_NOT_FOUND',
      `no scenario "${nameOrPath}" (named scenarios: ${namedScenarios().join(', ') || 'none'}; or give a path to a .json file)`,
    );
  const { raw, template } = withTemplate(readJson(path), path);
  return { ...parseScenario(raw, path, dirname(path)), ...(template !== undefined ? { template } : {}) };
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ScenarioError('SCENARIO_INVALID', `${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** `raw` with the fields of the template it `extends` (one level) filled in, and that template's path as written */
function withTemplate(raw: unknown, path: string): { raw: unknown; template?: string } {
  if (typeof raw !== 'object' || raw === null || !('extends' in raw)) return { raw };
  const { extends: ref, ...own } = raw as Record<string, unknown>;
  const invalid = (why: string) => new ScenarioError('SCENARIO_INVALID', `${path}: field extends: ${why}`);
  if (typeof ref !== 'string') throw invalid('must be the path of a template file');
  if (typeof own.name !== 'string') throw invalid('a scenario that extends a template needs its own name');
  const templatePath = resolve(dirname(path), ref);
  if (!existsSync(templatePath)) throw invalid(`no template at ${templatePath}`);
  const template = readJson(templatePath);
  if (typeof template !== 'object' || template === null || Array.isArray(template))
    throw invalid(`${templatePath} is not a JSON object`);
  if ('extends' in template) throw invalid(`${templatePath} extends another template (one level only)`);
  const name = own.name;
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string') return v.replaceAll('{name}', name);
    if (Array.isArray(v)) return v.map(fill);
    if (typeof v === 'object' && v !== null)
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  return { raw: { ...(fill(template) as Record<string, unknown>), ...own }, template: ref };
}

export function marketDataDir(): string {
  return process.env.PREEMPT_MARKET_DATA ?? resolve(SCENARIOS_DIR, '../../shared/data/market');
}

/** Absolute path of a data file named in a scenario. */
export function resolveDataPath(file: string, dir: string): string {
  const path = file.startsWith('shared:') ? join(marketDataDir(), file.slice(7)) : resolve(dir, file);
  if (!existsSync(path))
    throw new ScenarioError(
      'SCENARIO_DATA',
      `data file ${file} not found at ${path}${file.startsWith('shared:') ? ' (set PREEMPT_MARKET_DATA to the folder of the real market data)' : ''}`,
    );
  return path;
}
