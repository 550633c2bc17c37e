'use strict';
// index.d.ts against test/usage.ts, with the TypeScript compiler of
// devDependencies (skipped, and said so, when it is not installed).

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const tsc = path.join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc');
const skip = !fs.existsSync(tsc) ? 'typescript is not installed (npm ci in clients/node)' : false;

it('index.d.ts types the documented usage (tsc --strict)', { skip }, () => {
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
