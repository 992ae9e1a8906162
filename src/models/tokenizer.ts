/**
 * Byte-level tokenizer: a prompt's UTF-8 bytes are its tokens (ids 0..255),
 * framed by BOS and EOS and right-padded with PAD to a fixed length L:
 *
 *   "hi" -> [BOS, 104, 105, EOS, PAD, PAD, ...]      (L ids in all)
 *   mask     1    1    1    1    0    0   ...
 *
 * Every Unicode string encodes (a lone UTF-16 surrogate becomes U+FFFD, as
 * TextEncoder does), so no prompt is ever an error. A prompt longer than L - 2
 * bytes is cut at the last whole character that fits and `onWarn` is told.
 *
 * The vocabulary is tiny (259) and fixed, so nothing is trained or shipped for
 * the tokenizer; the price is long sequences for long prompts, which is fine for
 * the short captions of MNIST-scale experiments. (No BPE: GPT-2's byte-level BPE
 * would shorten sequences about 4x but needs a trained merge table.)
 */
import * as tf from '@tensorflow/tfjs';

export const BOS_ID = 256;
export const EOS_ID = 257;
export const PAD_ID = 258;
export const BYTE_VOCAB_SIZE = 259;

export interface TokenizerConfig {
  /** L: ids per prompt including BOS and EOS (so at most L - 2 bytes of text). */
  readonly maxLength: number;
}

export const TOKENIZER_DEFAULTS: TokenizerConfig = {
  maxLength: 32,
};

export function tokenizerConfig(partial: Partial<TokenizerConfig> = {}): TokenizerConfig {
  const cfg = { ...TOKENIZER_DEFAULTS, ...partial };
  if (!Number.isInteger(cfg.maxLength) || cfg.maxLength < 3) {
    throw new Error(`tokenizerConfig: maxLength must be an integer >= 3 (BOS + >= 1 byte + EOS), got ${cfg.maxLength}`);
  }
  return cfg;
}

/** A batch of encoded prompts, row-major [B, L]. */
export interface EncodedText {
  /** Token ids [B*L]. */
  readonly ids: Int32Array;
  /** [B*L]: 1 for BOS, bytes and EOS; 0 for padding. */
  readonly mask: Float32Array;
  /** Number of prompts B. */
  readonly count: number;
  /** Ids per prompt L. */
  readonly length: number;
}

export interface EncodeOptions {
  /** Told about every truncated prompt (default: silent). */
  readonly onWarn?: (message: string) => void;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

/** Largest n <= limit such that bytes[0..n) ends on a character boundary (a continuation byte is 10xxxxxx). */
function characterBoundary(bytes: Uint8Array, limit: number): number {
  let n = limit;
  while (n > 0 && n < bytes.length && (bytes[n] & 0xc0) === 0x80) n--;
  return n;
}

export class ByteTokenizer {
  readonly config: TokenizerConfig;
  readonly vocabSize = BYTE_VOCAB_SIZE;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly padId = PAD_ID;

  constructor(config: Partial<TokenizerConfig> = {}) {
    this.config = tokenizerConfig(config);
  }

  /** L. */
  get maxLength(): number {
    return this.config.maxLength;
  }

  /** Encodes prompts to [B, L] ids and mask (see the file header). */
  encode(texts: readonly string[], options: EncodeOptions = {}): EncodedText {
    const L = this.config.maxLength;
    const room = L - 2;
    const ids = new Int32Array(texts.length * L).fill(PAD_ID);
    const mask = new Float32Array(texts.length * L);
    texts.forEach((text, b) => {
      if (typeof text !== 'string') throw new Error(`ByteTokenizer.encode: prompt ${b} is a ${typeof text}, expected a string`);
      const bytes = utf8.encode(text);
      let n = bytes.length;
      if (n > room) {
        n = characterBoundary(bytes, room);
        const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
        options.onWarn?.(`prompt ${b} ("${shown}") has ${bytes.length} UTF-8 bytes; truncated to ${n} (maxLength ${L} includes BOS and EOS)`);
      }
      const row = b * L;
      ids[row] = BOS_ID;
      ids.set(bytes.subarray(0, n), row + 1);
      ids[row + 1 + n] = EOS_ID;
      mask.fill(1, row, row + n + 2);
    });
    return { ids, mask, count: texts.length, length: L };
  }

  /** Encodes to tensors: ids int32 [B, L] and mask float32 [B, L] (the caller disposes both). */
  encodeTensors(texts: readonly string[], options: EncodeOptions = {}): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
    const e = this.encode(texts, options);
    return { ids: tf.tensor2d(e.ids, [e.count, e.length], 'int32'), mask: tf.tensor2d(e.mask, [e.count, e.length], 'float32') };
  }

  /** The text of one row of ids (the bytes between BOS and EOS; invalid UTF-8 decodes to U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === BOS_ID || id === PAD_ID) continue;
      if (id === EOS_ID) break;
      if (!Number.isInteger(id) || id < 0 || id > 255) throw new Error(`ByteTokenizer.decode: id ${id} at position ${i} is not a byte or special id`);
      bytes.push(id);
    }
    return utf8Decoder.decode(Uint8Array.from(bytes));
  }
}
