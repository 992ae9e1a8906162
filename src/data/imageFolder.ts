/**
 * A folder of PNG images with optional captions and labels, for small custom
 * text-to-image datasets.
 *
 * Layout:
 *   my-data/
 *     captions.jsonl   one JSON object per line: {"file": "a.png", "caption": "a red circle", "label": 3}
 *     a.png, b.png, ...
 * `file` is relative to the folder; `caption` is a string; `label` (optional)
 * is a non-negative integer and must then be given on every line. Blank lines
 * are skipped. The dataset holds the listed images in line order (PNGs not
 * listed are ignored). Without captions.jsonl, every *.png in the folder is
 * loaded in name order, with no captions or labels.
 *
 * All images must share height, width and channel count (grayscale PNGs give
 * 1 channel, others 3; alpha is dropped: see io/png.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadPng } from '../io/png';
import { DatasetSplit, ImageDataset, validateDataset } from './dataset';

export const CAPTIONS_FILE = 'captions.jsonl';

export interface ImageFolderOptions {
  /** Dataset name (default: the folder's base name). */
  readonly name?: string;
  /** Split recorded on the dataset (default 'train'). */
  readonly split?: DatasetSplit;
  /** Names of the label classes (label i names classNames[i]); default null. */
  readonly classNames?: readonly string[];
  /** Keep only the first `limit` entries (default: all). */
  readonly limit?: number;
}

export interface CaptionEntry {
  readonly file: string;
  readonly caption: string;
  readonly label: number | null;
}

/** Parses captions.jsonl text; `source` names the file in errors, which give 1-based line numbers. */
export function parseCaptionsJsonl(text: string, source: string): CaptionEntry[] {
  const entries: CaptionEntry[] = [];
  const lines = text.split(/\r?\n/);
  let withLabel = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    const where = `${source} line ${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new Error(`${where}: expected an object {"file": ..., "caption": ...}, found ${line.slice(0, 80)}`);
    }
    const rec = obj as Record<string, unknown>;
    if (typeof rec.file !== 'string' || rec.file.length === 0) {
      throw new Error(`${where}: "file" must be a non-empty string, found ${JSON.stringify(rec.file)}`);
    }
    if (typeof rec.caption !== 'string') {
      throw new Error(`${where}: "caption" must be a string, found ${JSON.stringify(rec.caption)}`);
    }
    let label: number | null = null;
    if (rec.label !== undefined) {
      if (typeof rec.label !== 'number' || !Number.isInteger(rec.label) || rec.label < 0) {
        throw new Error(`${where}: "label" must be a non-negative integer, found ${JSON.stringify(rec.label)}`);
      }
      label = rec.label;
      withLabel++;
    }
    if (withLabel > 0 && withLabel !== entries.length + 1) {
      throw new Error(`${where}: "label" is given on some lines but not others; give it on every line or none`);
    }
    entries.push({ file: rec.file, caption: rec.caption, label });
  }
  return entries;
}

/** Loads a folder of PNGs (+ captions.jsonl) as a uint8 NHWC dataset. */
export function loadImageFolder(dir: string, options: ImageFolderOptions = {}): ImageDataset {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`image folder ${dir} does not exist or is not a folder`);
  const captionsPath = path.join(dir, CAPTIONS_FILE);
  let entries: CaptionEntry[] | null = null;
  let files: string[];
  if (fs.existsSync(captionsPath)) {
    entries = parseCaptionsJsonl(fs.readFileSync(captionsPath, 'utf8'), captionsPath);
    files = entries.map((e) => e.file);
  } else {
    files = fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.png')).sort();
  }
  const { limit } = options;
  if (limit !== undefined) {
    if (!Number.isInteger(limit) || limit < 0) throw new Error(`image folder ${dir}: limit must be a non-negative integer, received ${limit}`);
    files = files.slice(0, limit);
    if (entries !== null) entries = entries.slice(0, limit);
  }
  if (files.length === 0) throw new Error(`image folder ${dir}: no images (${entries === null ? 'no *.png files' : `${CAPTIONS_FILE} lists none`})`);

  let images: Uint8Array | null = null;
  let first = { file: '', height: 0, width: 0, channels: 0 };
  for (let i = 0; i < files.length; i++) {
    const p = path.join(dir, files[i]);
    if (!fs.existsSync(p)) throw new Error(`image folder ${dir}: ${files[i]} listed in ${CAPTIONS_FILE} does not exist`);
    const img = loadPng(p);
    if (images === null) {
      first = { file: files[i], height: img.height, width: img.width, channels: img.channels };
      images = new Uint8Array(files.length * img.data.length);
    } else if (img.height !== first.height || img.width !== first.width || img.channels !== first.channels) {
      throw new Error(`image folder ${dir}: ${files[i]} is ${img.height}x${img.width}x${img.channels} (HxWxC), ` +
        `expected ${first.height}x${first.width}x${first.channels} like ${first.file}; all images must share size and channels`);
    }
    images.set(img.data, i * img.data.length);
  }
  return validateDataset({
    name: options.name ?? path.basename(path.resolve(dir)),
    split: options.split ?? 'train',
    images: images ?? new Uint8Array(0),
    count: files.length,
    height: first.height,
    width: first.width,
    channels: first.channels,
    labels: entries !== null && entries.length > 0 && entries[0].label !== null
      ? Int32Array.from(entries, (e) => e.label ?? -1) : null,
    captions: entries === null ? null : entries.map((e) => e.caption),
    classNames: options.classNames ?? null,
  });
}
