import net from 'node:net';

/** A loopback TCP proxy whose link can be cut and restored, to simulate a server outage. */
export interface TcpProxy {
  port: number;
  /** Stops accepting connections and destroys every open one. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  /**
   * Destroys every open connection, then accepts new ones without forwarding a byte, as a network that
   * drops packets does. restore() forwards again.
   */
  blackhole(): Promise<void>;
  /**
   * Stops forwarding on every open connection without closing it, as a network that starts dropping
   * packets does, while new connections still work.
   */
  freezeOpenConnections(): void;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port that forwards every connection to `targetHost:targetPort`. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const links = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let forwarding = true;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (!forwarding) return;
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.pipe(client);
    const link = { client, upstream };
    links.add(link);
    client.on('close', () => {
      links.delete(link);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });

  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    cut: stop,
    async restore() {
      forwarding = true;
      if (!server.listening) await listen(port);
    },
    async blackhole() {
      await stop();
      forwarding = false;
      await listen(port);
    },
    freezeOpenConnections() {
      for (const { client, upstream } of links) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        // A frozen link passes no FIN either, so neither side learns that the other ended or closed.
        client.removeAllListeners('close');
        upstream.removeAllListeners('close');
        client.on('close', () => sockets.delete(client));
        upstream.on('close', () => sockets.delete(upstream));
      }
      links.clear();
    },
    close: stop,
  };
}
