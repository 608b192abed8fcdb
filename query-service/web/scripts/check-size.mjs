// The bundle budget: every built JavaScript file, gzipped, together under BUDGET bytes.
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const BUDGET = 300 * 1024;
const dir = new URL('../dist/assets/', import.meta.url).pathname;
let total = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
  const size = gzipSync(readFileSync(join(dir, file)), { level: 9 }).length;
  total += size;
  console.log(`  ${file}: ${(size / 1024).toFixed(1)} kB gzipped`);
}
console.log(`bundle: ${(total / 1024).toFixed(1)} kB of JavaScript gzipped (budget ${BUDGET / 1024} kB)`);
if (total > BUDGET) {
  console.error('bundle: over budget');
  process.exit(1);
}
