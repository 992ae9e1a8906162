/**
 * `fid <a> <b>`: Frechet distance (and optionally KID) between two image sets,
 * in the feature space of `--features`.
 *
 *   tfjs-diffusion fid samples/ dataset:mnist:test --features mnist --kid
 *
 * A side is a folder of PNGs (all the same size and channels),
 * `dataset:<name>[:<split>]` (mnist, fashion-mnist, cifar10 with --data-dir;
 * split defaults to test), or `noise:<H>x<W>x<C>` (--limit uniform-noise
 * images, a worst-case baseline). --limit N keeps the first N files of a folder
 * (by name) and a seeded random N images of a dataset. Each side is brought to the extractor's input size
 * on its own (features.ts prepareImages); the output says how.
 */
import type { CommandModule } from 'yargs';
import { DatasetName, isDatasetName, loadDataset } from '../data/load';
import { frechetDistance, FrechetResult } from '../eval/frechet';
import { kernelInceptionDistance, KidResult } from '../eval/kid';
import { FeatureExtractor, ImageSize, loadFeatureExtractor } from '../eval/features';
import { datasetSource, extractSourceFeatures, imageFolderSource, ImageSource, SourceFeatures, uniformNoiseSource } from '../eval/imageFolderStats';
import { BackendArgs, runWithBackend, withBackendOptions } from './common';

export interface FidOptions {
  /** Folder of PNGs, dataset:<name>[:<split>] or noise:<H>x<W>x<C>. */
  readonly a: string;
  readonly b: string;
  /** mnist | fashion-mnist | colored-mnist | cifar10 | pixels | inception:<path> | <classifier>.safetensors */
  readonly features: string;
  readonly kid: boolean;
  /** Images per forward pass. */
  readonly batchSize: number;
  /** Use at most this many images per side (folders: the first N by name; datasets: a seeded random N). */
  readonly limit?: number;
  /** Data folder for dataset: sides that need one. */
  readonly dataDir?: string;
  readonly kidSubsets: number;
  /** Default min(1000, nA, nB). */
  readonly kidSubsetSize?: number;
  readonly seed: number;
  readonly onLog?: (line: string) => void;
}

export interface FidReport {
  readonly features: string;
  readonly description: string;
  readonly inputSize: ImageSize;
  readonly sides: readonly [SourceFeatures, SourceFeatures];
  readonly frechet: FrechetResult;
  readonly kid: KidResult | null;
}

/** A folder path, dataset:<name>[:<split>] or noise:<H>x<W>x<C> as an image source. */
export function openImageSource(spec: string, options: { limit?: number; dataDir?: string; seed?: number } = {}): ImageSource {
  if (spec.startsWith('noise:')) {
    const m = /^noise:(\d+)x(\d+)x([13])$/.exec(spec);
    if (m === null) throw new Error(`bad source '${spec}': expected noise:<H>x<W>x<C> with C = 1 or 3, e.g. noise:28x28x1`);
    if (options.limit === undefined) throw new Error(`source '${spec}' needs --limit (how many noise images)`);
    return uniformNoiseSource(options.limit, { height: Number(m[1]), width: Number(m[2]), channels: Number(m[3]) }, options.seed ?? 0);
  }
  if (!spec.startsWith('dataset:')) return imageFolderSource(spec, { limit: options.limit });
  const [, name, split = 'test', ...rest] = spec.split(':');
  if (!isDatasetName(name) || name === 'image-folder' || rest.length > 0 || (split !== 'train' && split !== 'test')) {
    throw new Error(`bad source '${spec}': expected dataset:<mnist|fashion-mnist|cifar10>[:train|test] or a folder of PNGs`);
  }
  const data = loadDataset(name as DatasetName, split, { dataDir: options.dataDir });
  return datasetSource(data, { limit: options.limit, randomSubset: options.seed ?? 0 });
}

/** Reads both sides through one extractor and compares them. */
export async function runFid(opts: FidOptions): Promise<FidReport> {
  const log = opts.onLog ?? ((): void => undefined);
  const a = openImageSource(opts.a, opts);
  const b = openImageSource(opts.b, opts);
  const extractor: FeatureExtractor = await loadFeatureExtractor(opts.features, { pixelSize: a.size });
  try {
    const read = async (s: ImageSource, label: string): Promise<SourceFeatures> => {
      let lastLog = 0;
      return extractSourceFeatures(s, extractor, {
        batchSize: opts.batchSize,
        keepFeatures: opts.kid,
        onProgress: (done, total) => {
          if (done === total || performance.now() - lastLog > 10_000) {
            lastLog = performance.now();
            log(`${label}: ${done}/${total} images`);
          }
        },
      });
    };
    const fa = await read(a, 'A');
    const fb = await read(b, 'B');
    const frechet = frechetDistance(fa.stats.gaussian(), fb.stats.gaussian());
    let kid: KidResult | null = null;
    if (opts.kid && fa.features !== null && fb.features !== null) {
      kid = await kernelInceptionDistance(fa.features, fb.features, { numSubsets: opts.kidSubsets, subsetSize: opts.kidSubsetSize, seed: opts.seed });
    }
    return { features: extractor.name, description: extractor.description, inputSize: extractor.inputSize, sides: [fa, fb], frechet, kid };
  } finally {
    extractor.dispose();
  }
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(3);
}

/** The text `fid` prints. */
export function formatFidReport(r: FidReport): string {
  const lines = [`features: ${r.description}`];
  r.sides.forEach((s, i) => lines.push(`${i === 0 ? 'A' : 'B'}: ${s.source}: ${s.count} images, ${s.preparation}`));
  lines.push(`FID: ${fmt(r.frechet.distance)}  (|mu_A - mu_B|^2 = ${fmt(r.frechet.meanTerm)}, covariance term ${fmt(r.frechet.covarianceTerm)})`);
  if (r.kid !== null) lines.push(`KID: ${fmt(r.kid.mean)} +- ${fmt(r.kid.std)}  (${r.kid.numSubsets} subsets of ${r.kid.subsetSize}, cubic polynomial kernel)`);
  for (const note of r.frechet.notes) lines.push(`note: ${note}`);
  if (r.sides.some((s) => s.count <= s.stats.dim)) {
    lines.push(`note: fewer images than feature dimensions (${r.sides[0].stats.dim}) on a side: the covariance is singular and FID is biased upwards; compare FIDs only at equal image counts`);
  }
  return lines.join('\n');
}

interface FidArgs extends BackendArgs {
  a: string;
  b: string;
  features: string;
  kid: boolean;
  batch: number;
  limit?: number;
  'data-dir'?: string;
  'kid-subsets': number;
  'kid-subset-size'?: number;
  seed: number;
}

export const fidCommand: CommandModule<object, FidArgs> = {
  command: 'fid <a> <b>',
  describe: 'FID (and KID with --kid) between two image sets (folders of PNGs, dataset:<name>[:split], noise:<H>x<W>x<C>)',
  builder: (y) =>
    withBackendOptions(y)
      .positional('a', { type: 'string', demandOption: true, describe: 'folder of PNGs, dataset:<name>[:train|test] or noise:<H>x<W>x<C>' })
      .positional('b', { type: 'string', demandOption: true, describe: 'folder of PNGs, dataset:<name>[:train|test] or noise:<H>x<W>x<C>' })
      .option('features', {
        type: 'string',
        default: 'mnist',
        describe: 'mnist | fashion-mnist | colored-mnist | cifar10 (checkpoints/classifiers/<name>.safetensors) | pixels | inception:<model.json> | <classifier>.safetensors',
      })
      .option('kid', { type: 'boolean', default: false, describe: 'also compute KID (keeps the features in memory)' })
      .option('batch', { type: 'number', default: 100, describe: 'images per forward pass' })
      .option('limit', { type: 'number', describe: 'use at most N images per side (folder: first N by name; dataset: seeded random N)' })
      .option('data-dir', { type: 'string', describe: 'data folder for dataset: sources (cifar10, fashion-mnist)' })
      .option('kid-subsets', { type: 'number', default: 100 })
      .option('kid-subset-size', { type: 'number', describe: 'default min(1000, nA, nB)' })
      .option('seed', { type: 'number', default: 0, describe: 'seed of the KID subsets, dataset subsets and noise: sources' }) as never,
  handler: async (args) =>
    runWithBackend(args, async () => {
      const report = await runFid({
        a: args.a,
        b: args.b,
        features: args.features,
        kid: args.kid,
        batchSize: args.batch,
        limit: args.limit,
        dataDir: args['data-dir'],
        kidSubsets: args['kid-subsets'],
        kidSubsetSize: args['kid-subset-size'],
        seed: args.seed,
        onLog: (l) => process.stderr.write(l + '\n'),
      });
      process.stdout.write(formatFidReport(report) + '\n');
    }),
};
