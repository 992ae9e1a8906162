/**
 * Pipeline folders on disk (Node): a directory holding the trained parts of one
 * text-to-image system and a `pipeline.json` manifest naming them (the manifest
 * itself: io/pipelineManifest.ts; reading parts from any source: io/pipelineFiles.ts).
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
import { writeFileAtomic } from './atomicWrite';
import { readSafetensorsHeader } from './safetensorsFile';
import { LIBRARY_ID, parsePipelineManifest, pipelinePart, PipelineManifest, PipelineManifestInput, PIPELINE_FORMAT_VERSION, PIPELINE_MANIFEST_FILE, validatePipelineManifest } from './pipelineManifest';
import { LoadProgress, PipelineFiles } from './pipelineFiles';

/** True when `child` (absolute) is strictly inside `parent` (absolute). */
function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel.length > 0 && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
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
  const manifest = validatePipelineManifest({ format_version: PIPELINE_FORMAT_VERSION, library: LIBRARY_ID, ...input }, file);
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
  const manifest = parsePipelineManifest(text, file);
  await checkPartFiles(dir, manifest, file);
  return manifest;
}

/** Absolute path of the part playing `role`; the error lists the roles the manifest has. */
export function pipelinePartPath(dir: string, manifest: PipelineManifest, role: string): string {
  return path.resolve(dir, pipelinePart(manifest, role, path.join(dir, PIPELINE_MANIFEST_FILE)).file);
}

/**
 * A pipeline folder as PipelineFiles (what the core's loaders read): files are read
 * on demand, and only inside the folder (also after resolving symlinks); `onProgress`
 * is told each file once it is read.
 */
export function folderFiles(dir: string, onProgress?: (p: LoadProgress) => void): PipelineFiles {
  const root = path.resolve(dir);
  return {
    location: dir,
    where: (file) => path.join(dir, file),
    read: async (file) => {
      const abs = path.resolve(root, file);
      if (path.isAbsolute(file) || !isInside(root, abs)) throw new Error(`${path.join(dir, file)}: outside the pipeline folder ${dir}`);
      let real: string;
      try {
        real = await fsp.realpath(abs);
      } catch {
        throw new Error(`${path.join(dir, file)}: does not exist`);
      }
      if (!isInside(await fsp.realpath(root), real)) throw new Error(`${path.join(dir, file)}: resolves (via a symlink) outside the pipeline folder`);
      try {
        const bytes = await fsp.readFile(real);
        onProgress?.({ file, loaded: bytes.byteLength, total: bytes.byteLength });
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (e) {
        throw new Error(`${path.join(dir, file)}: cannot read (${(e as Error).message})`);
      }
    },
  };
}
