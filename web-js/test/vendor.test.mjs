// The vendored @stomp/stompjs the pages load is exactly the pinned package's ES modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { differences } from './vendor-sync.mjs';

test('vendor/stompjs equals the esm6 modules and LICENSE of the @stomp/stompjs pinned in package-lock.json', () => {
  assert.deepEqual(differences(), [], 'run `npm run vendor` after changing the pinned version');
});
