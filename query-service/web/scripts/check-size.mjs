// The bundle budget: every built JavaScript file, gzipped, together under BUDGET bytes. Run
// by `npm run build`; the browser tests' budget test reads the same figure (`bundleSize`).
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUDGET = 300 * 1024;
const dir = new URL('../dist/assets/', import.meta.url).pathname;

/** Each built JavaScript file with its gzipped size, and the total (bytes). */
export function bundleSize() {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .map((file) => ({ file, gzipped: gzipSync(readFileSync(join(dir, file)), { level: 9 }).length }));
  return { files, total: files.reduce((sum, f) => sum + f.gzipped, 0) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { files, total } = bundleSize();
  for (const { file, gzipped } of files) console.log(`  ${file}: ${(gzipped / 1024).toFixed(1)} kB gzipped`);
  console.log(`bundle: ${(total / 1024).toFixed(1)} kB of JavaScript gzipped (budget ${BUDGET / 1024} kB)`);
  if (total > BUDGET) {
    console.error('bundle: over budget');
    process.exit(1);
  }
}
