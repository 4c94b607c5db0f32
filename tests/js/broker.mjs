// Starts a real WsBroker (the Release build of src/Broker) on 127.0.0.1 for the Node suites, and mints JWTs for it.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');
export const brokerDll = join(repoRoot, 'src/Broker/bin/Release/net10.0/WsBroker.Broker.dll');
export const signingKey = 'wsbroker-js-tests-signing-key-0123456789abcdef';

/** A free TCP port on 127.0.0.1 (so a restarted broker can come back on the same address). */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** Starts the broker; resolves once it listens. `port` 0 picks a free one. Extra args are passed through.
 * With WSBROKER_JS_CLUSTER=<n> in the environment, a call that names no port and no data folder starts a cluster of n
 * nodes instead (tests/js/cluster-harness.mjs) and returns the same shape, whose `url` and `wsUrl` name the next node at
 * each read: a single-node suite then runs with its clients spread over the nodes. `single` forces one node; `env` adds
 * to (or overrides) the broker's environment. WSBROKER_TEST_TRANSPORT=Pipeline|AspNetCore picks the WebSocket transport
 * (as for the C# suites). `fdLimit` starts it under `ulimit -n <fdLimit>` (soft and hard). */
export async function startBroker({ port = 0, args = [], dataDir, single = false, env = {}, fdLimit } = {}) {
  const clusterNodes = Number(process.env.WSBROKER_JS_CLUSTER ?? 0);
  if (clusterNodes > 1 && !single && !port && !dataDir) return spreadOver(clusterNodes, args);
  if (!existsSync(brokerDll)) throw new Error(`broker not built: ${brokerDll} (run dotnet build -c Release first)`);
  const ownData = !dataDir;
  dataDir ??= mkdtempSync(join(tmpdir(), 'wsbroker-js-'));
  const command = fdLimit ? ['bash', ['-c', `ulimit -n ${Number(fdLimit)} && exec dotnet "$@"`, 'bash']] : ['dotnet', []];
  const child = spawn(command[0], [...command[1], brokerDll,
    '--urls', `http://127.0.0.1:${port}`,
    `--Auth:SigningKey=${signingKey}`,
    `--ConnectionStrings:Sqlite=Data Source=${join(dataDir, 'broker.db')}`,
    '--Broker:HeartBeatSendMs=500',
    '--Broker:HeartBeatReceiveMs=500',
    '--Logging:LogLevel:Default=Warning',
    '--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information',
    ...(process.env.WSBROKER_TEST_TRANSPORT ? [`--Broker:Transport=${process.env.WSBROKER_TEST_TRANSPORT}`] : []),
    ...args], { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOTNET_NOLOGO: '1', ...env } });
  let output = '';
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); fail(new Error(`broker did not start within 30 s:\n${output}`)); }, 30_000);
    const onData = (chunk) => {
      output += chunk;
      const match = /Now listening on: (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) { clearTimeout(timer); ok(match[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`broker exited with ${code}:\n${output}`)); });
  });
  const stop = () => new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();   // exited, or killed by a signal
    child.once('exit', () => ok());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
  /** Sends `signal` (e.g. SIGKILL) and resolves with the exit code/signal once the process is gone. */
  const kill = (signal) => new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, sig) => ok({ code, signal: sig }));
    child.kill(signal);
  });
  return {
    url,
    pid: child.pid,
    wsUrl: url.replace('http://', 'ws://') + '/ws',
    port: Number(url.split(':').pop()),
    dataDir,
    output: () => output,
    stop,
    kill,
    async dispose() { await stop(); if (ownData) rmSync(dataDir, { recursive: true, force: true }); },
  };
}

async function spreadOver(count, args) {
  const { startCluster } = await import('./cluster-harness.mjs');
  const cluster = await startCluster(count, args);
  let next = 0;
  const pick = () => cluster.nodes[next++ % cluster.nodes.length];
  return {
    get url() { return pick().url; },
    get wsUrl() { return pick().wsUrl; },
    nodes: cluster.nodes,
    output: () => cluster.nodes.map((n, i) => `--- node ${i + 1}\n${n.output()}`).join('\n'),
    stop: () => Promise.allSettled(cluster.nodes.map((n) => n.stop())),
    kill: (signal) => Promise.allSettled(cluster.nodes.map((n) => n.kill(signal))),
    dispose: () => cluster.dispose(),
  };
}

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT for the broker's test signing key; `exp` (Unix seconds) overrides `expiresIn` (seconds from now). */
export function token(sub, role = 'client', { name = sub, expiresIn = 3600, exp, key = signingKey } = {}) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, role, name, exp: exp ?? Math.floor(Date.now() / 1000) + expiresIn }));
  const signature = createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** Resolves when `predicate()` is true, polling; rejects after `ms`. */
export async function until(predicate, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
