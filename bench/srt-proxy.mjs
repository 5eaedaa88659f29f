// sandbox-runtime's proxies as a peer for bench/bench.py: the HTTP proxy
// (createHttpProxyServer: plain-HTTP forward + CONNECT) and, optionally, the
// SOCKS5 proxy (createSocksProxyServer), each with an allow-all filter, no
// parent proxy and no authentication token, on loopback.
//
//   node srt-proxy.mjs PACKAGE_DIR HTTP_PORT [SOCKS_PORT]
//
// PACKAGE_DIR is node_modules/@anthropic-ai/sandbox-runtime; bench.py
// installs it with npm into a cache directory outside the repository.
import { pathToFileURL } from 'node:url';
import net from 'node:net';
import path from 'node:path';

const [pkg, httpPort, socksPort] = process.argv.slice(2);
const load = (f) => import(pathToFileURL(path.join(pkg, 'dist', 'sandbox', f)).href);

const { createHttpProxyServer } = await load('http-proxy.js');
const http = createHttpProxyServer({ filter: () => true });
http.listen(Number(httpPort), '127.0.0.1');

if (socksPort) {
    const { createSocksProxyServer } = await load('socks-proxy.js');
    const socks = createSocksProxyServer({ filter: () => true });
    net.createServer((sock) => socks.handleConnection(sock))
        .listen(Number(socksPort), '127.0.0.1');
}
