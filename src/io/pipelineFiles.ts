/**
 * Where a pipeline's files come from, as the core's loaders see them: bytes by
 * relative file name. Three sources, one interface:
 *
 *   a base URL        filesFromUrl('/checkpoints/mnist-latent/')   fetch, progress over bytes
 *   a map of bytes    filesFromMap({ 'pipeline.json': ..., ... })  bundlers, tests, a dropped folder
 *   a folder (Node)   folderFiles('checkpoints/mnist-latent')      io/pipeline.ts
 *
 * `readManifest` and `readPart` are what every pipeline loader calls: the manifest
 * from its JSON text, a part as a parsed checkpoint whose `kind` must match the
 * manifest's.
 */
import { Checkpoint, parseCheckpoint } from './checkpoint';
import { parsePipelineManifest, pipelinePart, PipelineManifest, PIPELINE_MANIFEST_FILE } from './pipelineManifest';

export interface PipelineFiles {
  /** The folder path, URL or label the files come from (for messages and `Pipeline.source`). */
  readonly location: string;
  /** How a file is named in messages (e.g. 'checkpoints/mnist-latent/unet.safetensors'). */
  where(file: string): string;
  /** The bytes of a file, by its path relative to the pipeline (as the manifest names it). */
  read(file: string): Promise<Uint8Array>;
}

/** Progress of one file being read: bytes so far and in all (null when the server does not say). */
export interface LoadProgress {
  readonly file: string;
  readonly loaded: number;
  readonly total: number | null;
}

export type FileMap = ReadonlyMap<string, Uint8Array> | Readonly<Record<string, Uint8Array>>;

/** Normalises 'a/./b', leading './' and backslashes, so dropped-folder names match the manifest's. */
function normalise(name: string): string {
  return name.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.').join('/');
}

/**
 * Files held in memory, by relative name. Names may carry one common leading folder
 * (what a browser's folder picker gives: 'mnist-latent/pipeline.json'): it is dropped
 * when no 'pipeline.json' sits at the top, and names the files in messages unless
 * `label` is given (default '<files>').
 */
export function filesFromMap(files: FileMap, label?: string): PipelineFiles {
  const entries: Array<[string, Uint8Array]> = files instanceof Map ? [...files] : Object.entries(files as Readonly<Record<string, Uint8Array>>);
  let byName = new Map(entries.map(([k, v]) => [normalise(k), v]));
  let folder: string | null = null;
  if (!byName.has(PIPELINE_MANIFEST_FILE)) {
    const tops = new Set([...byName.keys()].map((k) => k.split('/')[0]));
    const top = [...tops][0];
    if (tops.size === 1 && top !== undefined && byName.has(`${top}/${PIPELINE_MANIFEST_FILE}`)) {
      byName = new Map([...byName].map(([k, v]) => [k.slice(top.length + 1), v]));
      folder = top;
    }
  }
  // Messages name the dropped folder when there is one.
  const location = label ?? folder ?? '<files>';
  return {
    location,
    where: (file) => `${location}/${file}`,
    read: async (file) => {
      const bytes = byName.get(normalise(file));
      if (bytes === undefined) {
        const names = [...byName.keys()];
        throw new Error(`${location}: no file '${file}' (files: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''})`);
      }
      return bytes;
    },
  };
}

export interface UrlFilesOptions {
  /** Told as each file arrives. */
  readonly onProgress?: (p: LoadProgress) => void;
  /** Aborts pending downloads. */
  readonly signal?: AbortSignal;
  /** Default: the global fetch. */
  readonly fetch?: typeof fetch;
}

/** Files under a base URL ('https://host/models/mnist-latent' or '/checkpoints/mnist-latent/'), fetched on demand. */
export function filesFromUrl(baseUrl: string, options: UrlFilesOptions = {}): PipelineFiles {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const doFetch = options.fetch ?? (typeof fetch === 'function' ? fetch : undefined);
  const urlOf = (file: string): string => `${base}${normalise(file).split('/').map(encodeURIComponent).join('/')}`;
  return {
    location: base,
    where: urlOf,
    read: async (file) => {
      if (doFetch === undefined) throw new Error(`${base}: no fetch() in this environment (pass options.fetch)`);
      const url = urlOf(file);
      let response: Response;
      try {
        response = await doFetch(url, options.signal !== undefined ? { signal: options.signal } : {});
      } catch (e) {
        if ((e as Error).name === 'AbortError') throw e;
        throw new Error(`${url}: cannot fetch (${(e as Error).message})`);
      }
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
      // Content-Length counts the bytes on the wire: with a Content-Encoding (gzip, br) the body arrives decoded, so no total then.
      const encoding = response.headers.get('content-encoding');
      const header = encoding !== null && encoding !== 'identity' ? null : response.headers.get('content-length');
      const total = header !== null && /^\d+$/.test(header) ? Number(header) : null;
      if (response.body === null || options.onProgress === undefined) {
        const bytes = new Uint8Array(await response.arrayBuffer());
        options.onProgress?.({ file, loaded: bytes.byteLength, total: bytes.byteLength });
        return bytes;
      }
      // Stream, so a large part reports progress as it arrives.
      const reader = response.body.getReader();
      const chunks: Uint8Array[] = [];
      let loaded = 0;
      options.onProgress({ file, loaded, total });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        loaded += value.byteLength;
        options.onProgress({ file, loaded, total });
      }
      if (total !== null && loaded !== total) throw new Error(`${url}: received ${loaded} of ${total} bytes`);
      const out = new Uint8Array(loaded);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.byteLength;
      }
      return out;
    },
  };
}

/** Reads and validates the pipeline's manifest (pipeline.json, UTF-8 JSON). */
export async function readManifest(files: PipelineFiles): Promise<PipelineManifest> {
  const where = files.where(PIPELINE_MANIFEST_FILE);
  const bytes = await files.read(PIPELINE_MANIFEST_FILE);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${where}: not UTF-8 text`);
  }
  return parsePipelineManifest(text, where);
}

/** Reads and parses the part playing `role`; its `kind` metadata must be the manifest's. */
export async function readPart(files: PipelineFiles, manifest: PipelineManifest, role: string): Promise<Checkpoint> {
  const part = pipelinePart(manifest, role, files.where(PIPELINE_MANIFEST_FILE));
  const source = files.where(part.file);
  const checkpoint = parseCheckpoint(await files.read(part.file), source);
  if (checkpoint.info.kind !== part.kind) {
    throw new Error(`${files.where(PIPELINE_MANIFEST_FILE)}: part '${role}': manifest says kind '${part.kind}' but ${part.file} says '${checkpoint.info.kind}'`);
  }
  return checkpoint;
}
