/**
 * The two execution venues: the simulated venue's slippage model, and the webhook venue's signature,
 * idempotency key and error classes against a real local HTTP endpoint.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MarketInput } from '../../src/service/queue/job.js';
import { SimulatedVenue, simulatedFillPrice } from '../../src/service/venue/simulated.js';
import type { ExecutionRequest } from '../../src/service/venue/types.js';
import {
  VenueOutcomeUnknownError,
  VenueRedirectError,
  VenueRejectedError,
  VenueUnavailableError,
} from '../../src/service/venue/types.js';
import { mayHaveSent, signWebhook, verifyWebhook, WebhookVenue } from '../../src/service/venue/webhook.js';

const market: MarketInput = {
  mark: 100,
  bid: 99.9,
  ask: 100.1,
  bidDepth: 100,
  askDepth: 100,
  contractSize: 1,
  liquidationFeeRate: 0.005,
};
const opts = { takerFeeRate: 0.0005, fallbackHalfSpreadBps: 2.5, fallbackImpactBps: 10 };

function request(kind: 'liquidate' | 'deleverage', qty: number, key = 'job-1'): ExecutionRequest {
  return {
    idempotencyKey: key,
    kind,
    account: 'a',
    orders: [{ symbol: 'BTC-PERP', side: 'sell', qty }],
    decidedAt: 5,
    market: { 'BTC-PERP': market },
  };
}

describe('simulated venue', () => {
  it("walks the simulator's book: below the bid for a sell, worse for larger sizes and after its own fills", async () => {
    // 10 contracts of 100 resting within 1%: the price walks 0.1% from the touch and averages half of it
    expect(simulatedFillPrice(market, 'sell', 10, opts)).toBeCloseTo(99.9 * (1 - 0.0005), 9);
    expect(simulatedFillPrice(market, 'buy', 10, opts)).toBeCloseTo(100.1 * (1 + 0.0005), 9);
    expect(simulatedFillPrice(market, 'sell', 50, opts)).toBeLessThan(
      simulatedFillPrice(market, 'sell', 10, opts),
    );
    const noBook: MarketInput = { mark: 100, contractSize: 1, liquidationFeeRate: 0.005 };
    expect(simulatedFillPrice(noBook, 'sell', 10, opts)).toBeCloseTo(100 * (1 - 0.00025) * (1 - 0.001), 9);
    // a second execution at the same instant pays for the depth the first one took; a minute later it has refilled
    const v = new SimulatedVenue();
    const first = (await v.execute(request('deleverage', 10, 'a'))).fills[0]?.price ?? 0;
    const second = (await v.execute(request('deleverage', 10, 'b'))).fills[0]?.price ?? 0;
    expect(second).toBeLessThan(first);
    const later =
      (await v.execute({ ...request('deleverage', 10, 'c'), decidedAt: 5 + 10 * 60_000 })).fills[0]?.price ??
      0;
    expect(later).toBeCloseTo(first, 3);
  });

  it('charges the liquidation fee on liquidations and the taker fee on reductions; a repeated key returns the first result', async () => {
    const v = new SimulatedVenue();
    const liq = await v.execute(request('liquidate', 10, 'k1'));
    const f = liq.fills[0];
    expect(f?.fee).toBeCloseTo((f?.qty ?? 0) * (f?.price ?? 0) * 0.005, 9);
    const red = await v.execute(request('deleverage', 10, 'k2'));
    expect(red.fills[0]?.fee).toBeCloseTo(10 * (red.fills[0]?.price ?? 0) * 0.0005, 9);
    expect(await v.execute(request('deleverage', 99, 'k2'))).toBe(red);
  });

  it('remembers the latest executions and restriction messages only, up to its bounds', async () => {
    const v = new SimulatedVenue({ maxRemembered: 2, maxRestrictionLog: 2 });
    const first = await v.execute(request('deleverage', 1, 'k1'));
    await v.execute(request('deleverage', 1, 'k2'));
    const third = await v.execute(request('deleverage', 1, 'k3'));
    expect(await v.execute(request('deleverage', 1, 'k3'))).toBe(third); // still remembered
    expect(await v.execute(request('deleverage', 1, 'k1'))).not.toBe(first); // forgotten: executed anew
    for (const version of [1, 2, 3])
      await v.setReduceOnly({
        idempotencyKey: `restrict-a-${version}`,
        account: 'a',
        reduceOnly: version % 2 === 1,
        version,
        epoch: 1,
        decidedAt: version,
        reason: 'pd-reduce-tier',
      });
    expect(v.restrictionLog.map((m) => m.version)).toEqual([2, 3]);
    expect(v.isReduceOnly('a')).toBe(true); // the state itself is not trimmed
  });

  it('refuses an order without market inputs', async () => {
    const req = { ...request('deleverage', 1), market: {} };
    await expect(new SimulatedVenue().execute(req)).rejects.toBeInstanceOf(VenueRejectedError);
  });
});

describe('simulated venue restrictions', () => {
  it('applies the newest version only and admits only risk-reducing orders of a restricted account', async () => {
    const v = new SimulatedVenue();
    const msg = (version: number, reduceOnly: boolean) => ({
      idempotencyKey: `restrict-a-${version}`,
      account: 'a',
      reduceOnly,
      version,
      epoch: 1,
      decidedAt: version,
      reason: reduceOnly ? 'pd-reduce-tier' : 'signal-cleared',
    });
    expect(v.admits('a', 10, 'buy', 5)).toBe(true);
    expect((await v.setReduceOnly(msg(1, true))).applied).toBe(true);
    expect(v.isReduceOnly('a')).toBe(true);
    expect(v.admits('a', 10, 'buy', 5)).toBe(false); // grows the long
    expect(v.admits('a', 10, 'sell', 4)).toBe(true); // reduces it
    expect(v.admits('a', 10, 'sell', 25)).toBe(false); // flips it short, larger
    expect(v.admits('a', 0, 'sell', 1)).toBe(false); // flat: any order opens exposure
    expect((await v.setReduceOnly(msg(3, true))).applied).toBe(true);
    // a late, older lift is ignored
    expect((await v.setReduceOnly(msg(2, false))).applied).toBe(false);
    expect(v.isReduceOnly('a')).toBe(true);
    expect((await v.setReduceOnly(msg(4, false))).applied).toBe(true);
    expect(v.admits('a', 10, 'buy', 5)).toBe(true);
  });
});

describe('webhook venue', () => {
  const secret = 'a-long-enough-webhook-secret';
  let server: Server;
  let url = '';
  const seen: { key: string; sigOk: boolean; body: unknown; raw: string }[] = [];
  /** 'ok', a malformed answer, a fill without ts, or an HTTP status to answer ('400' answers 422) */
  let mode: string = 'ok';
  const executed = new Map<string, string>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        const key = String(req.headers['idempotency-key']);
        const sigOk = verifyWebhook(secret, String(req.headers['x-preempt-signature']), raw, Date.now());
        seen.push({ key, sigOk, body: JSON.parse(raw), raw });
        if (!sigOk) return res.writeHead(401).end('bad signature');
        if (mode === '400') return res.writeHead(422).end('unknown account');
        if (/^\d{3}$/.test(mode)) return res.writeHead(Number(mode)).end('upstream');
        if (mode === 'garbage') return res.writeHead(200).end('{"nope":1}');
        if (mode === 'no-ts')
          return res
            .writeHead(200, { 'content-type': 'application/json' })
            .end('{"fills":[{"symbol":"BTC-PERP","side":"sell","qty":2,"price":99.5,"fee":0.1}]}');
        if (JSON.parse(raw).kind === 'restrict') return res.writeHead(204).end();
        // an honest venue: one execution per idempotency key
        const prior = executed.get(key);
        const answer =
          prior ??
          JSON.stringify({
            fills: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2, price: 99.5, fee: 0.1, ts: 7 }],
            reference: `v-${executed.size}`,
          });
        executed.set(key, answer);
        res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/reduce`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('signs the body, sends the idempotency key and returns the venue fills', async () => {
    mode = 'ok';
    const v = new WebhookVenue({ url, secret, timeoutMs: 2000 });
    const r1 = await v.execute(request('deleverage', 2, 'job-A'));
    const r2 = await v.execute(request('deleverage', 2, 'job-A'));
    expect(r1.fills).toEqual([{ symbol: 'BTC-PERP', side: 'sell', qty: 2, price: 99.5, fee: 0.1, ts: 7 }]);
    expect(r2.reference).toBe(r1.reference); // the venue executed the key once
    const last = seen[seen.length - 1];
    expect(last).toMatchObject({
      key: 'job-A',
      sigOk: true,
      body: { idempotencyKey: 'job-A', orders: [{ reduceOnly: true }] },
    });
  });

  it('delivers a restriction change as a signed restrict message with its idempotency key', async () => {
    mode = 'ok';
    const v = new WebhookVenue({ url, secret, timeoutMs: 2000 });
    const r = await v.setReduceOnly({
      idempotencyKey: 'restrict-a-1',
      account: 'a',
      reduceOnly: true,
      version: 1,
      epoch: 3,
      decidedAt: 5,
      reason: 'pd-reduce-tier',
    });
    expect(r).toEqual({ venue: 'webhook', applied: true });
    expect(seen[seen.length - 1]).toEqual({
      key: 'restrict-a-1',
      sigOk: true,
      body: {
        kind: 'restrict',
        idempotencyKey: 'restrict-a-1',
        account: 'a',
        reduceOnly: true,
        version: 1,
        epoch: 3,
        decidedAt: 5,
        reason: 'pd-reduce-tier',
      },
      raw: expect.any(String),
    });
    mode = '400';
    await expect(
      v.setReduceOnly({
        idempotencyKey: 'restrict-a-2',
        account: 'a',
        reduceOnly: false,
        version: 2,
        epoch: 3,
        decidedAt: 6,
        reason: 'signal-cleared',
      }),
    ).rejects.toBeInstanceOf(VenueRejectedError);
    mode = 'ok';
  });

  it('a wrong secret is refused by the venue (permanent)', async () => {
    const v = new WebhookVenue({ url, secret: 'another-secret-of-16+', timeoutMs: 2000 });
    await expect(v.execute(request('deleverage', 2, 'job-B'))).rejects.toBeInstanceOf(VenueRejectedError);
    expect(seen[seen.length - 1]?.sigOk).toBe(false);
  });

  it("stamps a fill without ts with the request's event time, not the wall clock", async () => {
    mode = 'no-ts';
    const v = new WebhookVenue({ url, secret, timeoutMs: 2000 });
    const r = await v.execute(request('deleverage', 2, 'job-T'));
    expect(r.fills.map((f) => f.ts)).toEqual([5]); // request(...).decidedAt
    mode = 'ok';
  });

  it('only what is certain is not executed: nothing sent or a 429 (transient), a 4xx (permanent); any 5xx, a 408 or a malformed 2xx is an unknown outcome', async () => {
    const v = new WebhookVenue({ url, secret, timeoutMs: 2000 });
    mode = '429';
    await expect(v.execute(request('deleverage', 1, 'job-C'))).rejects.toBeInstanceOf(VenueUnavailableError);
    for (const m of ['400', '404', '409']) {
      mode = m;
      await expect(v.execute(request('deleverage', 1, 'job-C')), m).rejects.toBeInstanceOf(
        VenueRejectedError,
      );
    }
    mode = 'garbage';
    const garbage = await v.execute(request('deleverage', 1, 'job-C')).catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(VenueOutcomeUnknownError);
    expect((garbage as VenueOutcomeUnknownError).answered).toBe(true);
    // the venue, or a proxy in front of it, may answer so after the venue executed the request
    for (const m of ['500', '502', '503', '504', '408']) {
      mode = m;
      const err = await v.execute(request('deleverage', 1, 'job-C')).catch((e: unknown) => e);
      expect(err, m).toBeInstanceOf(VenueOutcomeUnknownError);
      expect((err as VenueOutcomeUnknownError).answered, m).toBe(false);
      expect((err as Error).message, m).toContain(`answered ${m}: upstream`);
    }
    mode = 'ok';
    const down = new WebhookVenue({ url: 'http://127.0.0.1:1/x', secret, timeoutMs: 500 });
    await expect(down.execute(request('deleverage', 1, 'job-C'))).rejects.toBeInstanceOf(
      VenueUnavailableError,
    );
  });

  it('counts as not sent only what certainly stopped the request before it was written', async () => {
    const fetchError = async (url: string) => {
      try {
        await fetch(url, { method: 'POST', body: 'x' });
      } catch (e) {
        return e;
      }
      throw new Error(`${url} answered`);
    };
    // fetch's own refusals before connecting
    expect(mayHaveSent(await fetchError('http://127.0.0.1:6000/x'))).toBe(false); // a blocked port
    expect(mayHaveSent(await fetchError('not a url'))).toBe(false);
    expect(mayHaveSent(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }))).toBe(false);
    // sent or possibly sent, and anything unrecognised
    expect(mayHaveSent(new TypeError('fetch failed', { cause: { code: 'UND_ERR_SOCKET' } }))).toBe(true);
    expect(mayHaveSent(new DOMException('timed out', 'TimeoutError'))).toBe(true);
    expect(mayHaveSent(new TypeError('fetch failed', { cause: new Error('something new') }))).toBe(true);
    expect(mayHaveSent(new Error('no cause at all'))).toBe(true);
  });

  it('a timeout or a connection closed after sending is an unknown outcome; a refused connection is not', async () => {
    // a venue that reads the request and then never answers, or closes the connection without answering
    const received: string[] = [];
    const silentVenue = createServer((req) => {
      req.resume();
      req.on('end', () => {
        received.push(String(req.headers['idempotency-key']));
        if (req.url === '/close') req.socket.destroy();
      });
    });
    await new Promise<void>((r) => silentVenue.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(silentVenue.address() as AddressInfo).port}`;
    // a port nothing listens on: connection refused
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const refusedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/x`;
    await new Promise<void>((r) => closed.close(() => r()));
    try {
      const hang = new WebhookVenue({ url: `${base}/hang`, secret, timeoutMs: 200 });
      const timedOut = await hang.execute(request('deleverage', 1, 'job-U')).catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(VenueOutcomeUnknownError);
      expect((timedOut as VenueOutcomeUnknownError).answered).toBe(false);
      const cut = new WebhookVenue({ url: `${base}/close`, secret, timeoutMs: 2000 });
      const reset = await cut.execute(request('deleverage', 1, 'job-U')).catch((e: unknown) => e);
      expect(reset).toBeInstanceOf(VenueOutcomeUnknownError);
      expect((reset as VenueOutcomeUnknownError).answered).toBe(false);
      // both attempts reached the venue, under the same idempotency key
      expect(received).toEqual(['job-U', 'job-U']);
      // nothing was sent: the venue cannot have executed
      const refused = new WebhookVenue({ url: refusedUrl, secret, timeoutMs: 2000 });
      await expect(refused.execute(request('deleverage', 1, 'job-V'))).rejects.toBeInstanceOf(
        VenueUnavailableError,
      );
      const noHost = new WebhookVenue({ url: 'http://venue.invalid/x', secret, timeoutMs: 5000 });
      await expect(noHost.execute(request('deleverage', 1, 'job-V'))).rejects.toBeInstanceOf(
        VenueUnavailableError,
      );
    } finally {
      silentVenue.closeAllConnections();
      await new Promise<void>((r) => silentVenue.close(() => r()));
    }
  });

  it('sends the body it is given byte for byte (the kept one), and its own body is a function of the request', async () => {
    mode = 'ok';
    const v = new WebhookVenue({ url, secret, timeoutMs: 2000 });
    const req = request('deleverage', 2, 'job-K');
    const body = v.executionBody(req);
    // the same request read back from its JSON encodes to the same bytes
    expect(v.executionBody(JSON.parse(JSON.stringify(req)) as ExecutionRequest)).toBe(body);
    expect(JSON.parse(body)).toEqual({
      idempotencyKey: 'job-K',
      kind: 'deleverage',
      account: 'a',
      orders: [{ symbol: 'BTC-PERP', side: 'sell', qty: 2, reduceOnly: true }],
      decidedAt: 5,
    });
    // a kept body whose bytes differ from the request's own encoding (spacing) is sent as it is
    const kept = JSON.stringify(JSON.parse(body), null, 1);
    await v.execute(req, kept);
    expect(seen[seen.length - 1]).toMatchObject({ key: 'job-K', sigOk: true, raw: kept });
  });

  it('a redirect (any 3xx) is not followed: VenueRedirectError naming the status and Location', async () => {
    const hits: string[] = [];
    const redirecting = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.push(`${req.method} ${req.url}`);
        const status = Number(req.url?.slice(1, 4));
        if (req.url?.startsWith('/loop')) return res.writeHead(307, { location: '/loop' }).end();
        if (status >= 300 && status < 400)
          return res.writeHead(status, status === 304 ? {} : { location: '/target' }).end('moved');
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"fills":[]}');
      });
    });
    await new Promise<void>((r) => redirecting.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`;
    try {
      for (const status of [301, 302, 303, 304, 307, 308]) {
        const v = new WebhookVenue({ url: `${base}/${status}`, secret, timeoutMs: 2000 });
        const err = await v.execute(request('deleverage', 1, 'job-R')).catch((e: unknown) => e);
        expect(err, String(status)).toBeInstanceOf(VenueRedirectError);
        const r = err as VenueRedirectError;
        expect(r.status).toBe(status);
        expect(r.location).toBe(status === 304 ? null : '/target');
        expect(r.message).toContain(`answered ${status}`);
        expect(r.message).toContain(status === 304 ? '(no Location)' : '"/target"');
        const restrict = await v
          .setReduceOnly({
            idempotencyKey: 'restrict-a-9',
            account: 'a',
            reduceOnly: true,
            version: 9,
            epoch: 1,
            decidedAt: 5,
            reason: 'pd-reduce-tier',
          })
          .catch((e: unknown) => e);
        expect(restrict, String(status)).toBeInstanceOf(VenueRedirectError);
      }
      // a redirect loop: one request, not "redirect count exceeded" after 20 replays
      const loop = new WebhookVenue({ url: `${base}/loop`, secret, timeoutMs: 2000 });
      await expect(loop.execute(request('deleverage', 1, 'job-L'))).rejects.toBeInstanceOf(
        VenueRedirectError,
      );
      expect(hits.filter((h) => h.includes('/target'))).toEqual([]);
      expect(hits.filter((h) => h.includes('/loop'))).toEqual(['POST /loop']);
      expect(hits).toHaveLength(13);
    } finally {
      redirecting.closeAllConnections();
      await new Promise<void>((r) => redirecting.close(() => r()));
    }
  });

  it('signature verification rejects a tampered body and a stale timestamp', () => {
    const body = '{"a":1}';
    const sig = signWebhook(secret, 1000, body);
    expect(verifyWebhook(secret, sig, body, 1000)).toBe(true);
    expect(verifyWebhook(secret, sig, '{"a":2}', 1000)).toBe(false);
    expect(verifyWebhook(secret, sig, body, 1000 + 600_000)).toBe(false);
  });
});
