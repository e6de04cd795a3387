/**
 * The OpenAPI 3.1 document, generated from the route declarations (zod 4's `z.toJSONSchema`, no extra
 * package), and a self-contained docs page rendered from that document (no CDN needed).
 */
import { z } from 'zod';
import type { AnyRoute } from './route.js';
import { ErrorBodySchema } from './schemas.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  delete s.$schema;
  return s;
}

export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parameters(schema: z.ZodType | undefined, where: 'query' | 'path'): Json[] {
  if (!schema) return [];
  const s = jsonSchema(schema, 'input');
  const props = (s.properties ?? {}) as Record<string, Json>;
  const required = new Set((s.required as string[] | undefined) ?? []);
  return Object.entries(props).map(([name, p]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    ...(typeof p.description === 'string' ? { description: p.description } : {}),
    schema: p,
  }));
}

const errorResponse = (description: string): Json => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

export function buildOpenApi(routes: readonly AnyRoute[], version: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const { spec } of routes) {
    const responses: Record<string, Json> = {};
    for (const [status, r] of Object.entries(spec.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema
          ? { content: { [r.contentType ?? 'application/json']: { schema: jsonSchema(r.schema, 'output') } } }
          : {}),
      };
    }
    if (spec.query || spec.params || spec.body) responses['400'] ??= errorResponse('invalid input');
    if (spec.scope) {
      responses['401'] = errorResponse('missing or invalid API key');
      responses['403'] = errorResponse(`the key lacks the "${spec.scope}" scope`);
      responses['429'] = errorResponse('rate limit exceeded');
    }
    responses['500'] = errorResponse('internal error');
    const op: Json = {
      operationId: `${spec.method}${openApiPath(spec.path).replace(/[^A-Za-z0-9]+(.)?/g, (_, ch: string | undefined) => (ch ?? '').toUpperCase())}`,
      summary: spec.summary,
      tags: [spec.tag],
      parameters: [...parameters(spec.params, 'path'), ...parameters(spec.query, 'query')],
      responses,
    };
    if (spec.description) op.description = spec.description;
    if (spec.scope) {
      op.security = [{ bearerAuth: [] }];
      op['x-required-scope'] = spec.scope;
    }
    if (spec.body) {
      const schema = jsonSchema(spec.body, 'input');
      const types = spec.rawBody?.contentTypes ?? ['application/json'];
      op.requestBody = { required: true, content: Object.fromEntries(types.map((t) => [t, { schema }])) };
    }
    const path = openApiPath(spec.path);
    paths[path] ??= {};
    paths[path][spec.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'preempt risk service',
      version,
      description:
        'Default probabilities, margin state and early-reduction decisions for derivatives accounts. ' +
        'Authenticate with `Authorization: Bearer KEY`; scopes: score:read, events:write, admin (admin holds all).',
    },
    paths,
    components: {
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: jsonSchema(ErrorBodySchema, 'output') },
    },
  };
}

const escHtml = (s: string): string =>
  s.replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch] ?? ch);

/** A plain HTML reference of every operation, rendered from the document itself. */
export function docsPage(doc: Json): string {
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const sections: string[] = [];
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const scope = op['x-required-scope']
        ? `scope <code>${escHtml(String(op['x-required-scope']))}</code>`
        : 'public';
      const params = (op.parameters as Json[]).map(
        (p) =>
          `<li><code>${escHtml(String(p.name))}</code> (${escHtml(String(p.in))}${p.required ? ', required' : ''})</li>`,
      );
      const body = op.requestBody
        ? `<details><summary>request body</summary><pre>${escHtml(JSON.stringify(op.requestBody, null, 2))}</pre></details>`
        : '';
      const responses = `<details><summary>responses</summary><pre>${escHtml(JSON.stringify(op.responses, null, 2))}</pre></details>`;
      sections.push(
        `<section><h2><span class="m">${method.toUpperCase()}</span> <code>${escHtml(path)}</code></h2>` +
          `<p>${escHtml(String(op.summary ?? ''))} · ${scope}</p>${op.description ? `<p>${escHtml(String(op.description))}</p>` : ''}` +
          `${params.length ? `<ul>${params.join('')}</ul>` : ''}${body}${responses}</section>`,
      );
    }
  }
  const info = doc.info as Json;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escHtml(String(info.title))}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.m{background:#223;color:#fff;padding:.1rem .4rem;border-radius:3px;font-size:.8em}pre{background:#f4f4f6;padding:.6rem;overflow:auto}
section{border-top:1px solid #ddd;margin-top:1rem}</style></head><body>
<h1>${escHtml(String(info.title))} <small>${escHtml(String(info.version))}</small></h1><p>${escHtml(String(info.description))}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>${sections.join('\n')}</body></html>`;
}
