/**
 * safetensors files on disk (Node): reading a whole file or only its header, and
 * atomic writing. The format itself, parsed from and serialized to bytes, is
 * ./safetensors.ts (runs anywhere).
 */
import { promises as fsp } from 'fs';
import { writeFileAtomic } from './atomicWrite';
import { parseSafetensors, parseSafetensorsHeader, SafeTensor, SafetensorsFile, SafetensorsHeader, SerializeOptions, serializeSafetensors } from './safetensors';

/** Reads and validates a safetensors file (plain typed arrays, no tf). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseSafetensors(bytes, path);
}

/**
 * Reads and validates only the header of a file (names, dtypes, shapes, metadata),
 * without reading the tensor data. The layout is checked against the real file size,
 * so a truncated or padded file is refused exactly as `readSafetensors` would.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  let fh: Awaited<ReturnType<typeof fsp.open>>;
  try {
    fh = await fsp.open(path, 'r');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    const { size } = await fh.stat();
    const prefix = new Uint8Array(8);
    await fh.read(prefix, 0, Math.min(8, size), 0);
    const first = parseSafetensorsHeader(prefix, size, path);
    if (!('needBytes' in first)) return first;
    const head = new Uint8Array(first.needBytes);
    const { bytesRead } = await fh.read(head, 0, first.needBytes, 0);
    if (bytesRead !== first.needBytes) throw new Error(`${path}: could read only ${bytesRead - 8} of ${first.needBytes - 8} header bytes`);
    const header = parseSafetensorsHeader(head, size, path);
    if ('needBytes' in header) throw new Error(`${path}: header changed while reading`);
    return header;
  } finally {
    await fh.close();
  }
}

/** Serializes and writes atomically (see atomicWrite.ts). */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafeTensor>,
  metadata: Readonly<Record<string, string>> = {},
  options: SerializeOptions = {},
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata, options));
}
