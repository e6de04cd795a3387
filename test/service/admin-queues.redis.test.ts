import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, makeHarness } from './harness.js';

describe('the queue dashboard (bull-board) under /admin/queues', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('answers admin keys only, by Bearer or by Basic with the key as password', async () => {
    h = await makeHarness('bull-board');
    const none = await h.call('GET', '/admin/queues', { key: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Basic');
    expect((await h.call('GET', '/admin/queues', { key: h.keys['score:read'] })).status).toBe(401);
    expect((await h.call('GET', '/admin/queues', { key: 'pk_wrong' })).status).toBe(401);
    const page = await h.call('GET', '/admin/queues', { key: h.keys.admin });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const basic = Buffer.from(`ops:${h.keys.admin}`).toString('base64');
    const api = await h.service.app.request('/admin/queues/api/queues?activeQueue=liquidate&page=1', {
      headers: { authorization: `Basic ${basic}` },
    });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['deleverage', 'liquidate', 'restrict']);
  });
});
