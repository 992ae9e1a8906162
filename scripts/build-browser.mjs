/**
 * The ESM build of the core (src/core.ts) for browsers and bundlers:
 * dist/browser/core.mjs (+ .map), the `browser` / `import` target of
 * package.json "exports" ('.' in a browser, and './core').
 *
 * One bundled file of our code; every package (@tensorflow/*, seedrandom,
 * fast-png) stays an import for the user's bundler to resolve, so a page that
 * also imports @tensorflow/tfjs gets one tfjs, not two. The source map carries
 * the sources' text, since src/ is not shipped.
 *
 * Runs after tsc in `npm run build` (and so at `npm ci`, via prepare). It fails,
 * exit code 1, on an esbuild error, on a Node built-in left among the build's
 * imports (packages: 'external' would otherwise pass `import 'fs'` through; the
 * full rule with import chains is test/core/bundle.test.ts), and on an imported
 * package that is not in package.json "dependencies" (users would not have it).
 *
 * Usage: node scripts/build-browser.mjs
 */
import * as esbuild from 'esbuild';
import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = 'src/core.ts';
const OUTFILE = 'dist/browser/core.mjs';

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const dependencies = new Set(Object.keys(pkg.dependencies ?? {}));
const builtins = new Set(builtinModules);

/** '@scope/name/sub' -> '@scope/name', 'name/sub' -> 'name'. */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function fail(message) {
  console.error(`build-browser: ${message}`);
  process.exit(1);
}

let result;
try {
  result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [ENTRY],
    outfile: OUTFILE,
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    sourcemap: true,
    sourcesContent: true,
    metafile: true,
    logLevel: 'warning',
  });
} catch {
  fail(`esbuild could not build ${ENTRY} (errors above)`); // esbuild has printed them
}

const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
const nodeBuiltins = [...new Set(imports.filter((p) => p.startsWith('node:') || builtins.has(p)))];
if (nodeBuiltins.length > 0) {
  fail(`${OUTFILE} imports Node built-ins (${nodeBuiltins.join(', ')}); the core must not. Run \`npx jest test/core\` for the import chains.`);
}
const missing = [...new Set(imports.map(packageName).filter((p) => !dependencies.has(p)))];
if (missing.length > 0) {
  fail(`${OUTFILE} imports packages that are not in package.json "dependencies": ${missing.join(', ')}`);
}
const bytes = Object.entries(result.metafile.outputs).find(([file]) => file.endsWith('.mjs'))?.[1].bytes ?? 0;
console.log(`build-browser: ${OUTFILE} (${(bytes / 1024).toFixed(1)} KiB; imports ${[...new Set(imports)].sort().join(', ')})`);
