/**
 * `inspect <file>`: prints what a safetensors checkpoint holds (every tensor's name,
 * dtype, shape and size, the total parameter count, the metadata with JSON values
 * pretty-printed). Given a pipeline folder, prints its manifest and then each part.
 * Only headers are read; the whole layout is still validated, and a bad file is an
 * error naming the file and the problem.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { readSafetensorsHeader } from '../io/safetensorsFile';
import { pipelinePartPath, readPipelineManifest } from '../io/pipeline';
import { PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';

function withCommas(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A metadata value; JSON objects and arrays (config, state) are pretty-printed, indented. */
function formatMetadataValue(value: string): string {
  const trimmed = value.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return `\n${JSON.stringify(JSON.parse(value), null, 2).replace(/^/gm, '    ')}`;
    } catch {
      // Not JSON after all: print as stored.
    }
  }
  return ` ${value}`;
}

async function fileReport(file: string): Promise<string> {
  const { tensors, metadata, dataStart } = await readSafetensorsHeader(file);
  const rows = [...tensors].map(([name, t]) => {
    const count = t.shape.reduce((a, b) => a * b, 1);
    return { name, dtype: t.dtype, shape: `[${t.shape.join(', ')}]`, count: withCommas(count), n: count, bytes: t.dataOffsets[1] - t.dataOffsets[0] };
  });
  const total = rows.reduce((a, r) => a + r.n, 0);
  const dataBytes = rows.reduce((a, r) => a + r.bytes, 0);
  const byDtype = new Map<string, number>();
  rows.forEach((r) => byDtype.set(r.dtype, (byDtype.get(r.dtype) ?? 0) + 1));
  const dtypes = [...byDtype].map(([d, k]) => `${d}: ${k}`).join(', ');
  const w = {
    name: Math.max(4, ...rows.map((r) => r.name.length)),
    dtype: Math.max(5, ...rows.map((r) => r.dtype.length)),
    shape: Math.max(5, ...rows.map((r) => r.shape.length)),
    count: Math.max(6, ...rows.map((r) => r.count.length)),
  };
  const lines = [
    `file: ${file}`,
    `tensors: ${rows.length}${dtypes ? ` (${dtypes})` : ''}, parameters: ${withCommas(total)}, data: ${humanBytes(dataBytes)}, header: ${humanBytes(dataStart - 8)}`,
    '',
    `  ${'name'.padEnd(w.name)}  ${'dtype'.padEnd(w.dtype)}  ${'shape'.padEnd(w.shape)}  ${'params'.padStart(w.count)}`,
    ...rows.map((r) => `  ${r.name.padEnd(w.name)}  ${r.dtype.padEnd(w.dtype)}  ${r.shape.padEnd(w.shape)}  ${r.count.padStart(w.count)}`),
    '',
  ];
  const keys = Object.keys(metadata);
  if (keys.length === 0) lines.push('metadata: (none)');
  else {
    lines.push('metadata:');
    for (const k of keys) lines.push(`  ${k}:${formatMetadataValue(metadata[k])}`);
  }
  return lines.join('\n');
}

/**
 * The report `inspect` prints, for a safetensors file or a pipeline folder.
 * Throws the loader's error (naming the file) on a bad file.
 */
export async function inspectReport(target: string): Promise<string> {
  let isDir = false;
  try {
    isDir = (await fsp.stat(target)).isDirectory();
  } catch (e) {
    throw new Error(`${target}: cannot read (${(e as Error).message})`);
  }
  if (!isDir) return fileReport(target);
  const manifest = await readPipelineManifest(target);
  const sections = [
    `pipeline: ${path.join(target, PIPELINE_MANIFEST_FILE)}`,
    `  design: ${manifest.design}`,
    `  library: ${manifest.library}`,
    ...Object.entries(manifest.parts).map(([role, p]) => `  part ${role}: ${p.file} (${p.kind})${p.description ? ` - ${p.description}` : ''}`),
    ...(manifest.defaults ? [`  defaults:${formatMetadataValue(JSON.stringify(manifest.defaults))}`] : []),
  ];
  const reports = [sections.join('\n')];
  for (const role of Object.keys(manifest.parts)) reports.push(await fileReport(pipelinePartPath(target, manifest, role)));
  return reports.join('\n\n');
}

export const inspectCommand: CommandModule<object, { file: string }> = {
  command: 'inspect <file>',
  describe: 'List the tensors (name, dtype, shape, parameter count) and metadata of a safetensors checkpoint or pipeline folder',
  builder: (y) => y.positional('file', { type: 'string', demandOption: true, describe: 'a .safetensors file or a pipeline folder' }),
  handler: async (args) => {
    process.stdout.write(`${await inspectReport(args.file)}\n`);
  },
};
