/**
 * Pipeline folders: a directory holding the trained parts of one text-to-image
 * system and a `pipeline.json` manifest naming them, so a pipeline is loaded by
 * reading its manifest, never by parsing folder or file names.
 *
 *   checkpoints/mnist-latent/
 *     pipeline.json          { "format_version": 1, "library": "tfjs-diffusion@0.1.0",
 *                              "design": "latent",
 *                              "parts": { "unet": { "file": "unet.safetensors", "kind": "unet" }, ... },
 *                              "defaults": { "steps": 50, "guidanceScale": 3 } }
 *     unet.safetensors
 *     ...
 *
 * Reading validates the manifest and checks that every part file lies inside the
 * folder (no '..' or symlink escape) and has a valid safetensors header whose
 * `kind` metadata, when present, matches the manifest.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { version } from '../../package.json';
import { writeFileAtomic } from './atomicWrite';
import { readSafetensorsHeader } from './safetensors';

/** Written into every file this library produces (checkpoint metadata, manifests). */
export const LIBRARY_ID = `tfjs-diffusion@${version}`;

export const PIPELINE_MANIFEST_FILE = 'pipeline.json';
export const PIPELINE_FORMAT_VERSION = 1;

/**
 * pixel: diffusion on pixels (Imagen-like base model); latent: diffusion in an
 * autoencoder's latent space (Stable-Diffusion-like); cascade: a base model plus
 * super-resolution stages; unclip: text embedding -> prior -> image-embedding decoder (DALL-E 2-like).
 */
export type PipelineDesign = 'pixel' | 'latent' | 'cascade' | 'unclip';
export const PIPELINE_DESIGNS: readonly PipelineDesign[] = ['pixel', 'latent', 'cascade', 'unclip'];

export interface PipelinePart {
  /** Path of the part's safetensors file, relative to the folder. */
  file: string;
  /** What the file holds, e.g. 'unet' | 'autoencoder' | 'text-encoder'; matches the file's `kind` metadata. */
  kind: string;
  description?: string;
}

export interface PipelineManifest {
  format_version: 1;
  /** The library (and version) that wrote the manifest. */
  library: string;
  design: PipelineDesign;
  /** Parts by role ('unet', 'vae', 'text_encoder', 'upsampler_1', ...). */
  parts: Record<string, PipelinePart>;
  /** Sampling defaults (steps, guidance scale, sampler, ...): interpreted by the pipeline, not here. */
  defaults?: Record<string, unknown>;
}

/** What a caller supplies; the writer fills in `format_version` and `library`. */
export type PipelineManifestInput = Omit<PipelineManifest, 'format_version' | 'library'>;

const TOP_KEYS = ['format_version', 'library', 'design', 'parts', 'defaults'];
const PART_KEYS = ['file', 'kind', 'description'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the manifest's structure (no file access). Errors start with `where`. */
function validateManifest(m: unknown, where: string): PipelineManifest {
  if (!isPlainObject(m)) throw new Error(`${where}: manifest must be a JSON object`);
  const unknown = Object.keys(m).filter((k) => !TOP_KEYS.includes(k));
  if (unknown.length > 0) throw new Error(`${where}: unknown field(s) ${unknown.map((k) => `'${k}'`).join(', ')} (allowed: ${TOP_KEYS.join(', ')})`);
  if (m.format_version !== PIPELINE_FORMAT_VERSION) {
    throw new Error(`${where}: unknown format_version ${JSON.stringify(m.format_version)} (this library reads ${PIPELINE_FORMAT_VERSION})`);
  }
  if (typeof m.library !== 'string') throw new Error(`${where}: 'library' must be a string`);
  if (typeof m.design !== 'string' || !(PIPELINE_DESIGNS as readonly string[]).includes(m.design)) {
    throw new Error(`${where}: unknown design ${JSON.stringify(m.design)} (expected one of ${PIPELINE_DESIGNS.join(', ')})`);
  }
  if (!isPlainObject(m.parts) || Object.keys(m.parts).length === 0) throw new Error(`${where}: 'parts' must be a non-empty object {role: {file, kind}}`);
  const parts: Record<string, PipelinePart> = {};
  for (const [role, p] of Object.entries(m.parts)) {
    const what = `${where}: part '${role}'`;
    if (!isPlainObject(p)) throw new Error(`${what} must be an object {file, kind, description?}`);
    const extra = Object.keys(p).filter((k) => !PART_KEYS.includes(k));
    if (extra.length > 0) throw new Error(`${what}: unknown field(s) ${extra.map((k) => `'${k}'`).join(', ')} (allowed: ${PART_KEYS.join(', ')})`);
    if (typeof p.file !== 'string' || p.file.length === 0) throw new Error(`${what}: 'file' must be a non-empty relative path`);
    if (typeof p.kind !== 'string' || p.kind.length === 0) throw new Error(`${what}: 'kind' must be a non-empty string`);
    if (p.description !== undefined && typeof p.description !== 'string') throw new Error(`${what}: 'description' must be a string`);
    parts[role] = { file: p.file, kind: p.kind, ...(p.description !== undefined ? { description: p.description } : {}) };
  }
  if (m.defaults !== undefined && !isPlainObject(m.defaults)) throw new Error(`${where}: 'defaults' must be an object`);
  return {
    format_version: PIPELINE_FORMAT_VERSION,
    library: m.library,
    design: m.design as PipelineDesign,
    parts,
    ...(m.defaults !== undefined ? { defaults: m.defaults as Record<string, unknown> } : {}),
  };
}

/** True when `child` (absolute) is strictly inside `parent` (absolute). */
function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel.length > 0 && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Checks every part file: inside the folder (also after resolving symlinks), a valid safetensors header, matching kind. */
async function checkPartFiles(dir: string, manifest: PipelineManifest, where: string): Promise<void> {
  const root = path.resolve(dir);
  const realRoot = await fsp.realpath(root);
  for (const [role, part] of Object.entries(manifest.parts)) {
    const what = `${where}: part '${role}'`;
    if (path.isAbsolute(part.file)) throw new Error(`${what}: file '${part.file}' must be relative to the folder`);
    const abs = path.resolve(root, part.file);
    if (!isInside(root, abs)) throw new Error(`${what}: file '${part.file}' escapes the pipeline folder`);
    let real: string;
    try {
      real = await fsp.realpath(abs);
    } catch {
      throw new Error(`${what}: file '${part.file}' does not exist`);
    }
    if (!isInside(realRoot, real)) throw new Error(`${what}: file '${part.file}' resolves (via a symlink) outside the pipeline folder`);
    let kind: string | undefined;
    try {
      kind = (await readSafetensorsHeader(abs)).metadata.kind;
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
    if (kind !== undefined && kind !== part.kind) {
      throw new Error(`${what}: manifest says kind '${part.kind}' but ${part.file} says '${kind}'`);
    }
  }
}

/**
 * Writes `<dir>/pipeline.json` atomically, after the same checks a reader makes
 * (so a manifest naming a missing or corrupt part is never written). Write the
 * part files first. Returns the manifest as written.
 */
export async function writePipelineManifest(dir: string, input: PipelineManifestInput): Promise<PipelineManifest> {
  const file = path.join(dir, PIPELINE_MANIFEST_FILE);
  const manifest = validateManifest({ format_version: PIPELINE_FORMAT_VERSION, library: LIBRARY_ID, ...input }, file);
  await checkPartFiles(dir, manifest, file);
  await writeFileAtomic(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Reads and validates `<dir>/pipeline.json` and the headers of all its parts. */
export async function readPipelineManifest(dir: string): Promise<PipelineManifest> {
  const file = path.join(dir, PIPELINE_MANIFEST_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the pipeline manifest (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const manifest = validateManifest(json, file);
  await checkPartFiles(dir, manifest, file);
  return manifest;
}

/** Absolute path of the part playing `role`; the error lists the roles the manifest has. */
export function pipelinePartPath(dir: string, manifest: PipelineManifest, role: string): string {
  const part = Object.prototype.hasOwnProperty.call(manifest.parts, role) ? manifest.parts[role] : undefined;
  if (!part) {
    throw new Error(`${path.join(dir, PIPELINE_MANIFEST_FILE)}: no part '${role}' (parts: ${Object.keys(manifest.parts).join(', ')})`);
  }
  return path.resolve(dir, part.file);
}
