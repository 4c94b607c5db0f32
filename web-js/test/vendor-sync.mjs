// The pages import @stomp/stompjs from web-js/vendor/stompjs/: the package's own ES modules (esm6/), copied byte for
// byte, so the broker serves them as static files with no build step. This script compares that copy with the
// version pinned in package-lock.json (installed by `npm ci`), or rewrites it with --write (`npm run vendor`).
import { readFileSync, readdirSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const packageDir = join(root, 'node_modules', '@stomp', 'stompjs');
export const vendorDir = join(root, 'vendor', 'stompjs');

function files(dir, base = dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? files(path, base) : [relative(base, path)];
  });
}

/** What the vendored copy must hold: relative path -> bytes. */
export function expected() {
  const map = new Map();
  for (const file of files(join(packageDir, 'esm6')).filter((f) => f.endsWith('.js'))) map.set(file, readFileSync(join(packageDir, 'esm6', file)));
  map.set('LICENSE', readFileSync(join(packageDir, 'LICENSE')));
  return map;
}

/** The differences between the vendored copy and the installed package; [] when they are the same. */
export function differences() {
  const pinned = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).packages['node_modules/@stomp/stompjs'].version;
  const installed = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version;
  const problems = installed === pinned ? [] : [`node_modules has @stomp/stompjs ${installed}, package-lock.json pins ${pinned} (run npm ci)`];
  const want = expected();
  const have = new Set(files(vendorDir));
  for (const [file, bytes] of want) {
    if (!have.has(file)) problems.push(`missing: vendor/stompjs/${file}`);
    else if (!readFileSync(join(vendorDir, file)).equals(bytes)) problems.push(`differs: vendor/stompjs/${file}`);
  }
  for (const file of have) if (!want.has(file)) problems.push(`not in the package: vendor/stompjs/${file}`);
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write')) {
    rmSync(vendorDir, { recursive: true, force: true });
    for (const [file, bytes] of expected()) {
      mkdirSync(dirname(join(vendorDir, file)), { recursive: true });
      writeFileSync(join(vendorDir, file), bytes);
    }
  }
  const problems = differences();
  for (const p of problems) console.error(p);
  if (problems.length) { console.error('vendor/stompjs is not the pinned @stomp/stompjs: run `npm run vendor`'); process.exit(1); }
  console.log('vendor/stompjs matches the pinned @stomp/stompjs');
}
