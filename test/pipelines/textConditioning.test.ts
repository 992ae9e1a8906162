/**
 * The frozen text encoder of the text-to-image pipelines
 * (src/pipelines/textConditioning.ts): read from a 'clip' checkpoint it is the
 * CLIP's own text tower (same outputs, its BPE tokenizer), frozen; the
 * 'text-encoder' file it writes reads back the same; other kinds, missing
 * tensors and a tokenizer that does not fit the tower are refused.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import { Rng, randomNormal } from '../../src/backend/random';
import { Clip, ClipConfigPartial } from '../../src/models/clip';
import { learnBpeMerges, ByteTokenizer } from '../../src/models/tokenizer';
import { TextEncoder } from '../../src/models/textEncoder';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensorsFile';
import { saveModelWeights, readModelConfig } from '../../src/io/checkpointFile';
import { encodePrompts, textEncoderCheckpointConfig, FrozenTextEncoder, TEXT_ENCODER_KIND } from '../../src/pipelines/textConditioning';
import { loadTextEncoder, saveTextEncoder } from '../../src/node/pipelineParts';

beforeAll(async () => useBackend('cpu'));

const CORPUS = ['a top digit', 'a left digit', 'a thin top digit', 'the left one', 'a top one'];
const MERGES = learnBpeMerges(CORPUS, { maxMerges: 6 });
const TINY: ClipConfigPartial = {
  image: { inChannels: 1, imageSize: 8, channels: [4, 8], groups: 2, embedDim: 8 },
  text: { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 },
  tokenizer: { merges: MERGES },
  seed: 5,
};
const PROMPTS = ['a top digit', '', 'the left one, thin'];

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-textcond-'));
}

/**
 * A tiny CLIP whose text-tower weights are moved away from their seeded init
 * (so a loader that built a fresh tower from the config without reading the file would be caught).
 */
function trainedLookingClip(): Clip {
  const clip = new Clip(TINY);
  const rng = new Rng('perturb');
  for (const [, v] of clip.textEncoder.namedParameters()) tf.tidy(() => v.assign(tf.add(v, randomNormal(v.shape, rng, 0, 0.1))));
  return clip;
}

function flat(m: { namedParameters(): Array<[string, tf.Variable]> }): Float32Array {
  return tf.tidy(() => tf.concat(m.namedParameters().map(([, v]) => v.reshape([-1]))).dataSync() as Float32Array);
}

/** states and pooled of `prompts` through an encoder and tokenizer, as arrays. */
function outputs(encoder: TextEncoder, tokenizer: ByteTokenizer, prompts: readonly string[]): { states: Float32Array; pooled: Float32Array; mask: Float32Array } {
  const out = encoder.encodeTexts(tokenizer, prompts);
  const r = { states: out.states.dataSync() as Float32Array, pooled: out.pooled.dataSync() as Float32Array, mask: out.mask.dataSync() as Float32Array };
  tf.dispose([out.states, out.pooled, out.mask]);
  return r;
}

describe('loadTextEncoder', () => {
  let dir: string;
  let clipFile: string;
  let clip: Clip;

  beforeAll(async () => {
    expect(MERGES.length).toBeGreaterThan(0);
    dir = tmpDir();
    clipFile = path.join(dir, 'clip.safetensors');
    clip = trainedLookingClip();
    await saveModelWeights(clipFile, clip, { kind: 'clip', config: { clip: clip.config } });
  });
  afterAll(() => clip.dispose());

  it('from a clip checkpoint: the CLIP text tower, frozen, with its BPE tokenizer; outputs equal exactly', async () => {
    const before = tf.memory().numTensors;
    const text = await loadTextEncoder(clipFile);
    try {
      expect(text.source).toBe(clipFile);
      expect(text.encoder.namedTrainableParameters()).toHaveLength(0);
      expect(text.encoder.namedParameters().length).toBe(clip.textEncoder.namedParameters().length);
      expect(text.config.text).toEqual(clip.config.text);
      expect(text.config.tokenizer).toEqual(clip.config.tokenizer);
      expect(text.tokenizer.config.merges).toEqual(MERGES);
      expect(text.tokenizer.vocabSize).toBe(259 + MERGES.length);
      expect(flat(text.encoder)).toEqual(flat(clip.textEncoder));
      const got = outputs(text.encoder, text.tokenizer, PROMPTS);
      const ref = outputs(clip.textEncoder, clip.tokenizer(), PROMPTS);
      expect(got.states).toEqual(ref.states);
      expect(got.pooled).toEqual(ref.pooled);
      expect(got.mask).toEqual(ref.mask);
      // The tokenizer is the BPE one: fewer tokens than bytes for a corpus caption.
      expect(got.mask.subarray(0, 10).reduce((a, b) => a + b, 0)).toBeLessThan('a top digit'.length + 2);
    } finally {
      text.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('saveTextEncoder -> loadTextEncoder (text-encoder kind) round trip gives the same weights, tokenizer and outputs', async () => {
    const fromClip = await loadTextEncoder(clipFile);
    const file = path.join(dir, 'text_encoder.safetensors');
    let back: FrozenTextEncoder | null = null;
    try {
      await saveTextEncoder(file, fromClip, { command: 'test' });
      const info = await readModelConfig(file);
      expect(info.kind).toBe(TEXT_ENCODER_KIND);
      expect(info.command).toBe('test');
      expect((info.config as { trainedAs: string }).trainedAs).toBe(clipFile);
      back = await loadTextEncoder(file);
      expect(back.source).toBe(file);
      expect(back.config).toEqual(fromClip.config);
      expect(back.encoder.namedTrainableParameters()).toHaveLength(0);
      expect(flat(back.encoder)).toEqual(flat(fromClip.encoder));
      expect(outputs(back.encoder, back.tokenizer, PROMPTS)).toEqual(outputs(fromClip.encoder, fromClip.tokenizer, PROMPTS));
      // The tower alone: no image-tower tensors in the file.
      const { tensors } = await readSafetensors(file);
      expect([...tensors.keys()].sort()).toEqual(clip.textEncoder.namedParameters().map(([n]) => n).sort());
    } finally {
      fromClip.dispose();
      back?.dispose();
    }
  });

  it('refuses a checkpoint of another kind, a clip file without its clip config, or missing a text tensor (leaving no tensor behind)', async () => {
    const before = tf.memory().numTensors;
    const unetKind = path.join(dir, 'as-unet.safetensors');
    await saveModelWeights(unetKind, clip, { kind: 'unet', config: { clip: clip.config } });
    await expect(loadTextEncoder(unetKind)).rejects.toThrow(/expected a 'text-encoder' or 'clip' checkpoint, got kind 'unet'/);

    const noConfig = path.join(dir, 'no-config.safetensors');
    await saveModelWeights(noConfig, clip, { kind: 'clip', config: { other: 1 } });
    await expect(loadTextEncoder(noConfig)).rejects.toThrow(/has no 'clip' entry/);

    const { tensors, metadata } = await readSafetensors(clipFile);
    expect(tensors.delete('text_encoder.ln_final.weight')).toBe(true);
    const missing = path.join(dir, 'missing.safetensors');
    await writeSafetensors(missing, tensors, metadata);
    await expect(loadTextEncoder(missing)).rejects.toThrow(/missing 1 parameter\(s\).*text_encoder\.ln_final\.weight/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a clip checkpoint whose tokenizer does not fit its text tower', async () => {
    const bad = path.join(dir, 'bad-tokenizer.safetensors');
    // The tower has 259 + merges ids; a byte tokenizer (no merges) would feed it a different vocabulary.
    await saveModelWeights(bad, clip, { kind: 'clip', config: { clip: { ...clip.config, tokenizer: { ...clip.config.tokenizer, merges: [] } } } });
    await expect(loadTextEncoder(bad)).rejects.toThrow(new RegExp(`tokenizer \\(maxLength 10, vocabulary 259\\) does not match the text encoder \\(maxLength 10, vocabSize ${259 + MERGES.length}\\)`));
  });
});

describe('textEncoderCheckpointConfig', () => {
  const text = { maxLength: 10, dim: 8, layers: 1, heads: 2, mlpRatio: 2, embedDim: 8, seed: 4 };

  it('accepts a matching pair and, without a tokenizer (pre-BPE files), bytes of the tower\'s length', () => {
    const c = textEncoderCheckpointConfig({ text: { ...text, vocabSize: 259 + MERGES.length }, tokenizer: { maxLength: 10, merges: MERGES } }, 'f');
    expect(c.tokenizer.merges).toEqual(MERGES);
    expect(c.text.vocabSize).toBe(259 + MERGES.length);
    const old = textEncoderCheckpointConfig({ text: { ...text, vocabSize: 259 } }, 'f');
    expect(old.tokenizer).toEqual({ maxLength: 10, merges: [] });
  });

  it('refuses a tokenizer whose vocabulary or length differs from the tower, and a config without text', () => {
    expect(() => textEncoderCheckpointConfig({ text: { ...text, vocabSize: 259 + MERGES.length }, tokenizer: { maxLength: 10, merges: [] } }, 'f.safetensors'))
      .toThrow(/f\.safetensors: tokenizer \(maxLength 10, vocabulary 259\) does not match the text encoder \(maxLength 10, vocabSize/);
    expect(() => textEncoderCheckpointConfig({ text: { ...text, vocabSize: 259 }, tokenizer: { maxLength: 12, merges: [] } }, 'f'))
      .toThrow(/tokenizer \(maxLength 12, vocabulary 259\) does not match the text encoder \(maxLength 10, vocabSize 259\)/);
    expect(() => textEncoderCheckpointConfig({ text: { ...text, vocabSize: 259 } , tokenizer: { maxLength: 10, merges: [[1, 2]] } }, 'f'))
      .toThrow(/vocabulary 260\) does not match/);
    expect(() => textEncoderCheckpointConfig({ tokenizer: {} }, 'f')).toThrow(/f: config metadata must hold \{ text, tokenizer \}/);
    expect(() => textEncoderCheckpointConfig(null, 'f')).toThrow(/must hold \{ text, tokenizer \}/);
  });
});

describe('encodePrompts', () => {
  let text: FrozenTextEncoder;
  let clip: Clip;
  beforeAll(async () => {
    const dir = tmpDir();
    clip = trainedLookingClip();
    await saveModelWeights(path.join(dir, 'clip.safetensors'), clip, { kind: 'clip', config: { clip: clip.config } });
    text = await loadTextEncoder(path.join(dir, 'clip.safetensors'));
  });
  afterAll(() => {
    text.dispose();
    clip.dispose();
  });

  it('gives states [B, L, D] and the tokenizer mask [B, L], the tower\'s states, and leaves no other tensor', () => {
    const before = tf.memory().numTensors;
    const { context, mask } = encodePrompts(text, PROMPTS);
    expect(context.shape).toEqual([3, 10, 8]);
    expect(mask.shape).toEqual([3, 10]);
    const enc = text.tokenizer.encode(PROMPTS);
    expect(mask.dataSync()).toEqual(enc.mask);
    expect(context.dataSync()).toEqual(outputs(clip.textEncoder, clip.tokenizer(), PROMPTS).states);
    tf.dispose([context, mask]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('warns about a prompt longer than the tokenizer allows, and refuses no prompts', () => {
    const before = tf.memory().numTensors;
    const warnings: string[] = [];
    const long = 'zq'.repeat(20); // no merges apply: 40 byte tokens > 8
    const { context, mask } = encodePrompts(text, ['a top digit', long], (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^prompt 1 \("zqzq.*"\) has 40 tokens; truncated to 8/);
    tf.dispose([context, mask]);
    expect(() => encodePrompts(text, [])).toThrow(/encodePrompts: no prompts given/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
