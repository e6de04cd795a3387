/**
 * One declaration per route: method, path, scope and the zod schemas of its inputs and outputs. The same
 * declaration mounts the handler (auth + input validation) and writes the route's OpenAPI entry, so the
 * document cannot drift from what the server accepts.
 */
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import type { Scope } from '../auth/keys.js';
import { type AuthDeps, requireScope } from '../auth/middleware.js';
import { ServiceError } from '../errors.js';
import type { AppEnv } from './env.js';

type Schema = z.ZodType;
type Out<S> = S extends Schema ? z.output<S> : undefined;

export interface ResponseSpec {
  description: string;
  schema?: Schema;
  /** default application/json */
  contentType?: string;
}

export interface RouteSpec<
  Q extends Schema | undefined,
  P extends Schema | undefined,
  B extends Schema | undefined,
> {
  method: 'get' | 'post';
  /** Hono syntax: `/v1/accounts/:id/risk` */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  /** null = public */
  scope: Scope | null;
  query?: Q;
  params?: P;
  /** validated JSON body; with `rawBody` the handler reads the body itself and this only documents it */
  body?: B;
  rawBody?: { contentTypes: string[] };
  responses: Record<number, ResponseSpec>;
}

export interface RouteInput<Q, P, B> {
  query: Q;
  params: P;
  body: B;
}

export type Handler<Q, P, B> = (
  c: Context<AppEnv>,
  input: RouteInput<Q, P, B>,
) => Response | Promise<Response>;

export interface AnyRoute {
  spec: RouteSpec<Schema | undefined, Schema | undefined, Schema | undefined>;
  mount(app: Hono<AppEnv>, auth: AuthDeps): void;
}

function fieldOf(issue: z.core.$ZodIssue | undefined): string {
  return issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
}

function validate<S extends Schema>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new ServiceError('BAD_REQUEST', `${where}: ${fieldOf(issue)}: ${issue?.message ?? 'invalid'}`, {
    field: fieldOf(issue),
    location: where,
  });
}

export function defineRoute<
  Q extends Schema | undefined = undefined,
  P extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
>(spec: RouteSpec<Q, P, B>, handler: Handler<Out<Q>, Out<P>, Out<B>>): AnyRoute {
  return {
    spec: spec as AnyRoute['spec'],
    mount(app, auth) {
      const run = async (c: Context<AppEnv>): Promise<Response> => {
        const query = (spec.query ? validate(spec.query, c.req.query(), 'query') : undefined) as Out<Q>;
        const params = (spec.params ? validate(spec.params, c.req.param(), 'path') : undefined) as Out<P>;
        let body = undefined as Out<B>;
        if (spec.body && !spec.rawBody) {
          let json: unknown;
          try {
            json = await c.req.json();
          } catch {
            throw new ServiceError('BAD_REQUEST', 'body: not valid JSON', {
              field: '(body)',
              location: 'body',
            });
          }
          body = validate(spec.body, json, 'body') as Out<B>;
        }
        return handler(c, { query, params, body });
      };
      if (spec.scope) app.on(spec.method.toUpperCase(), spec.path, requireScope(auth, spec.scope), run);
      else app.on(spec.method.toUpperCase(), spec.path, run);
    },
  };
}
