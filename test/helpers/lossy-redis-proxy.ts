/**
 * A TCP proxy in front of a real Redis that loses one reply on demand (a network cut after Redis ran a
 * command), or one request (a cut before Redis got it).
 */
import net from 'node:net';
import { URL } from 'node:url';

/**
 * A TCP proxy to the Redis at `redisUrl`. Once armed with a marker, the next client write containing it is
 * passed to Redis (which runs it), and then its reply is lost: the connection drops before the reply gets
 * back, as in a network cut. Armed to lose the request instead, that write is not passed to Redis (nothing
 * in it runs) and the connection drops. A client that resends unfulfilled commands after reconnecting (the
 * workers' 'wait' role) sends that command again. `lost` counts the replies and requests lost so far.
 */
export async function lossyRedisProxy(redisUrl: string) {
  const target = new URL(redisUrl);
  let marker: string | undefined;
  let losing: 'reply' | 'request' = 'reply';
  let lost = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let dropping = false;
    client.on('data', (d) => {
      if (marker !== undefined && d.includes(marker)) {
        marker = undefined;
        if (losing === 'request') {
          lost++;
          client.destroy();
          upstream.destroy();
          return;
        }
        dropping = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!dropping) return void client.write(d);
      lost++;
      client.destroy();
      upstream.destroy();
    });
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  const auth = target.password ? `${target.username}:${target.password}@` : '';
  return {
    url: `redis://${auth}127.0.0.1:${port}${target.pathname}`,
    /**
     * lose the reply to the next write containing `m` (or, `lose: 'request'`, that write itself, with any
     * other command sent in the same write)
     */
    arm(m: string, lose: 'reply' | 'request' = 'reply'): void {
      marker = m;
      losing = lose;
    },
    get lost(): number {
      return lost;
    },
    close(): Promise<void> {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
