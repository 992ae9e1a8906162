/**
 * `npm run web`: builds the page (src/web/page/, bundled with esbuild from the
 * same src/ as the Node library) and serves it on localhost:
 *
 *   /                    the page (index.html, main.js, worker.js, style.css)
 *   /wasm/*.wasm         @tensorflow/tfjs-backend-wasm's binaries (never a CDN)
 *   /pipelines.json      the shipped pipelines: folders of checkpoints/ that hold a pipeline.json
 *   /checkpoints/...     the repo's checkpoints/ folder, read-only
 *
 * Every response carries COOP same-origin + COEP require-corp (+ CORP
 * same-origin): without them the page is not cross-origin isolated, so it has
 * no SharedArrayBuffer and tfjs-backend-wasm cannot start its threaded build.
 *
 * Node built-ins + esbuild only. Flags: --port (default 8080, 0 = any free
 * port), --host (default 127.0.0.1), --checkpoints (default ./checkpoints).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AddressInfo } from 'net';
import * as esbuild from 'esbuild';

export interface WebServerOptions {
  /** 0 = any free port (default 8080). */
  readonly port?: number;
  /** Default 127.0.0.1: the page is for this machine; pass 0.0.0.0 deliberately to share it. */
  readonly host?: string;
  /** Folder served under /checkpoints/ (default: the repo's checkpoints/). */
  readonly checkpointsDir?: string;
  /** Where the built page goes (default: the repo's dist/web/). */
  readonly outDir?: string;
  /** Minify the bundles (default false: readable stack traces). */
  readonly minify?: boolean;
  /** Serve outDir as it is, without building it first (default false). */
  readonly skipBuild?: boolean;
}

export interface WebServer {
  /** e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  close(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PAGE_DIR = path.join(__dirname, 'page');
const WASM_DIR = path.join(REPO_ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

// ---------------------------------------------------------------- build

/**
 * Bundles main.ts and worker.ts for the browser into outDir, copies the static
 * files and the wasm binaries. Fails (with esbuild's messages) if the core pulls
 * in a Node built-in.
 */
export async function buildPage(outDir: string, minify = false): Promise<void> {
  fs.mkdirSync(path.join(outDir, 'wasm'), { recursive: true });
  await esbuild.build({
    entryPoints: { main: path.join(PAGE_DIR, 'main.ts'), worker: path.join(PAGE_DIR, 'worker.ts') },
    outdir: outDir,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2020',
    sourcemap: true,
    minify,
    logLevel: 'silent',
    tsconfig: path.join(PAGE_DIR, 'tsconfig.json'),
  });
  for (const f of ['index.html', 'style.css']) fs.copyFileSync(path.join(PAGE_DIR, f), path.join(outDir, f));
  const wasmFiles = fs.readdirSync(WASM_DIR).filter((f) => f.endsWith('.wasm'));
  if (wasmFiles.length === 0) throw new Error(`no .wasm files in ${WASM_DIR}: is @tensorflow/tfjs-backend-wasm installed?`);
  for (const f of wasmFiles) fs.copyFileSync(path.join(WASM_DIR, f), path.join(outDir, 'wasm', f));
}

// ---------------------------------------------------------------- serving

/** The folders of `checkpointsDir` that hold a pipeline.json, sorted. */
export function listPipelines(checkpointsDir: string): string[] {
  if (!fs.existsSync(checkpointsDir)) return [];
  return fs
    .readdirSync(checkpointsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(checkpointsDir, d.name, 'pipeline.json')))
    .map((d) => d.name)
    .sort();
}

/**
 * Maps a URL path below a root onto a file inside it, or null when the path
 * tries to leave the root ('..', an encoded '..', a NUL, a backslash).
 */
export function resolveInside(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) return null;
  const full = path.resolve(root, ...segments);
  const rel = path.relative(root, full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  return full;
}

function send(res: http.ServerResponse, status: number, body: string | Buffer, type: string): void {
  res.writeHead(status, { ...ISOLATION_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: string): void {
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) {
      send(res, 404, `not found: ${req.url}\n`, 'text/plain; charset=utf-8');
      return;
    }
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, { ...ISOLATION_HEADERS, 'Content-Type': type, 'Content-Length': st.size, 'Cache-Control': 'no-store' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    fs.createReadStream(file).pipe(res);
  });
}

function handler(pageDir: string, checkpointsDir: string): http.RequestListener {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'only GET and HEAD\n', 'text/plain; charset=utf-8');
      return;
    }
    const urlPath = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (urlPath === '/pipelines.json') {
      send(res, 200, JSON.stringify(listPipelines(checkpointsDir)), CONTENT_TYPES['.json']);
      return;
    }
    const [root, rest] = urlPath.startsWith('/checkpoints/') ? [checkpointsDir, urlPath.slice('/checkpoints/'.length)] : [pageDir, urlPath === '/' ? 'index.html' : urlPath];
    const file = resolveInside(root, rest);
    if (file === null) {
      send(res, 400, `refused path: ${req.url}\n`, 'text/plain; charset=utf-8');
      return;
    }
    sendFile(req, res, file);
  };
}

/** Builds the page, then serves it; resolves once listening. */
export async function startWebServer(options: WebServerOptions = {}): Promise<WebServer> {
  const port = options.port ?? 8080;
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer in [0, 65535], received ${port}`);
  const checkpointsDir = path.resolve(options.checkpointsDir ?? path.join(REPO_ROOT, 'checkpoints'));
  const outDir = path.resolve(options.outDir ?? path.join(REPO_ROOT, 'dist', 'web'));
  if (options.skipBuild !== true) await buildPage(outDir, options.minify ?? false);
  const server = http.createServer(handler(outDir, checkpointsDir));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${addr.port}/`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}

// ---------------------------------------------------------------- command line

function parseFlags(argv: readonly string[]): WebServerOptions {
  const out: { port?: number; host?: string; checkpointsDir?: string; minify?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--port') {
      const v = value();
      out.port = /^\d+$/.test(v) ? Number(v) : NaN;
    } else if (flag === '--host') out.host = value();
    else if (flag === '--checkpoints') out.checkpointsDir = value();
    else if (flag === '--minify') out.minify = true;
    else throw new Error(`unknown flag '${argv[i]}': expected --port N, --host H, --checkpoints DIR, --minify`);
  }
  return out;
}

if (require.main === module) {
  Promise.resolve()
    .then(() => startWebServer(parseFlags(process.argv.slice(2))))
    .then((s) => {
      process.stdout.write(`tfjs-diffusion page: ${s.url}  (Ctrl-C stops)\n`);
      const stop = (): void => void s.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    })
    .catch((e: Error) => {
      process.stderr.write(`npm run web: ${e.message}\n`);
      process.exit(1);
    });
}
