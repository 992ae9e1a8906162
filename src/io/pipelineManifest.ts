/**
 * The pipeline manifest, `pipeline.json`: the parts of one text-to-image system by role,
 * so a pipeline is loaded by reading its manifest, never by parsing folder or file names
 * (runs anywhere; folders on disk: io/pipeline.ts, Node).
 *
 *   checkpoints/mnist-latent/
 *     pipeline.json          { "format_version": 1, "library": "tfjs-diffusion@0.1.0",
 *                              "design": "latent",
 *                              "parts": { "unet": { "file": "unet.safetensors", "kind": "unet" }, ... },
 *                              "defaults": { "steps": 50, "guidanceScale": 3 } }
 *     unet.safetensors
 *     ...
 *
 * Part files are relative paths inside the pipeline (no absolute path, no '..' segment),
 * so the same manifest works in a folder, at a URL and in a map of dropped files.
 */
import { version } from '../../package.json';

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
export function validatePipelineManifest(m: unknown, where: string): PipelineManifest {
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
    if (/^([/\\]|[a-zA-Z]:)/.test(p.file)) throw new Error(`${what}: file '${p.file}' must be relative to the folder`);
    if (p.file.split(/[/\\]/).includes('..')) throw new Error(`${what}: file '${p.file}' escapes the pipeline folder`);
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

/** Parses and validates a manifest from its JSON text. Errors start with `where`. */
export function parsePipelineManifest(text: string, where: string): PipelineManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  return validatePipelineManifest(json, where);
}

/** The part playing `role`; the error lists the roles the manifest has. */
export function pipelinePart(manifest: PipelineManifest, role: string, where: string): PipelinePart {
  const part = Object.prototype.hasOwnProperty.call(manifest.parts, role) ? manifest.parts[role] : undefined;
  if (!part) throw new Error(`${where}: no part '${role}' (parts: ${Object.keys(manifest.parts).join(', ')})`);
  return part;
}
