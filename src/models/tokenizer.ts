/**
 * Byte-level tokenizer, optionally with byte-level BPE merges (GPT-2's scheme,
 * Radford et al. 2019; Sennrich et al. 2016) learned from a caption corpus.
 *
 *   "hi" -> [BOS, 104, 105, EOS, PAD, PAD, ...]      (L ids in all)
 *   mask     1    1    1    1    0    0   ...
 *
 * Ids: 0..255 are the UTF-8 bytes, 256/257/258 are BOS/EOS/PAD, and merge r
 * (in learning order) makes id 259 + r. With no merges this is the plain byte
 * tokenizer (vocabulary 259, nothing to learn or ship). With merges, a prompt is
 * first split into words (a run of letters, of digits or of other symbols, each
 * with its leading space), and inside each word the learned merges are applied
 * lowest-rank first, as GPT-2 does: "a thick 3" becomes ["a", " thick", " 3"]
 * when those words were frequent in the corpus. Sequences shrink about 4x on
 * captions, which is what makes the text tower cheap enough to train here; an
 * unseen word still encodes, as smaller pieces or bytes.
 *
 * Every Unicode string encodes (a lone UTF-16 surrogate becomes U+FFFD, as
 * TextEncoder does), so no prompt is ever an error. A prompt of more than L - 2
 * tokens is cut at the last token that ends on a whole character and `onWarn`
 * is told.
 */
import * as tf from '@tensorflow/tfjs';

export const BOS_ID = 256;
export const EOS_ID = 257;
export const PAD_ID = 258;
export const BYTE_VOCAB_SIZE = 259;

/** First id of the merged tokens: merge r makes id MERGE_BASE_ID + r. */
export const MERGE_BASE_ID = BYTE_VOCAB_SIZE;

export interface TokenizerConfig {
  /** L: ids per prompt including BOS and EOS (so at most L - 2 tokens of text). */
  readonly maxLength: number;
  /** BPE merges in rank order: [a, b] joins ids a and b into id 259 + rank. Empty: plain bytes. */
  readonly merges: readonly (readonly [number, number])[];
}

export const TOKENIZER_DEFAULTS: TokenizerConfig = {
  maxLength: 32,
  merges: [],
};

export function tokenizerConfig(partial: Partial<TokenizerConfig> = {}): TokenizerConfig {
  const cfg = { ...TOKENIZER_DEFAULTS, ...partial };
  if (!Number.isInteger(cfg.maxLength) || cfg.maxLength < 3) {
    throw new Error(`tokenizerConfig: maxLength must be an integer >= 3 (BOS + >= 1 token + EOS), got ${cfg.maxLength}`);
  }
  if (!Array.isArray(cfg.merges)) throw new Error('tokenizerConfig: merges must be an array of [a, b] id pairs');
  cfg.merges.forEach((m, r) => {
    const known = (id: unknown): boolean => Number.isInteger(id) && ((id as number) < 256 || ((id as number) >= MERGE_BASE_ID && (id as number) < MERGE_BASE_ID + r));
    if (!Array.isArray(m) || m.length !== 2 || !known(m[0]) || !known(m[1])) {
      throw new Error(`tokenizerConfig: merge ${r} must join two ids that exist before it (bytes 0..255 or merges 259..${MERGE_BASE_ID + r - 1}), got ${JSON.stringify(m)}`);
    }
  });
  return { maxLength: cfg.maxLength, merges: cfg.merges.map(([a, b]) => [a, b] as const) };
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

/** Splits text into pre-tokenization words (letters, digits or other symbols, each with its leading space); their concatenation is the text. */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  const pattern = /\s?[\p{L}\p{M}]+|\s?\p{N}+|\s?[^\s\p{L}\p{M}\p{N}]+|\s+/gu;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    const at = m.index ?? 0;
    if (at > last) words.push(text.slice(last, at)); // anything the pattern skipped (none expected) stays in
    words.push(m[0]);
    last = at + m[0].length;
  }
  if (last < text.length) words.push(text.slice(last));
  return words;
}

const pairKey = (a: number, b: number): number => a * 1_000_003 + b;

/** Applies merges to one word's ids: repeatedly joins the adjacent pair of lowest rank (GPT-2's order). */
function applyMerges(ids: number[], ranks: ReadonlyMap<number, number>): number[] {
  let word = ids;
  while (word.length > 1) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(pairKey(word[i], word[i + 1]));
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) break;
    const [a, b] = [word[best], word[best + 1]];
    const merged: number[] = [];
    for (let i = 0; i < word.length; i++) {
      if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
        merged.push(MERGE_BASE_ID + bestRank);
        i++;
      } else merged.push(word[i]);
    }
    word = merged;
  }
  return word;
}

export interface LearnBpeOptions {
  /** At most this many merges (vocabulary 259 + merges). */
  readonly maxMerges: number;
  /** Stop when the most frequent pair occurs fewer times than this (default 2). */
  readonly minCount?: number;
}

/**
 * Learns byte-level BPE merges from a corpus (every text counts once per
 * occurrence, so a frequent caption weighs more): count adjacent id pairs inside
 * words, join the most frequent (ties: the smallest ids first, so the result is
 * deterministic), repeat. Returns the merges in rank order.
 */
export function learnBpeMerges(corpus: Iterable<string>, options: LearnBpeOptions): [number, number][] {
  const { maxMerges } = options;
  const minCount = options.minCount ?? 2;
  if (!Number.isInteger(maxMerges) || maxMerges < 0) throw new Error(`learnBpeMerges: maxMerges must be an integer >= 0, got ${maxMerges}`);
  if (!Number.isInteger(minCount) || minCount < 1) throw new Error(`learnBpeMerges: minCount must be an integer >= 1, got ${minCount}`);
  const counts = new Map<string, number>();
  for (const text of corpus) {
    if (typeof text !== 'string') throw new Error(`learnBpeMerges: corpus entries must be strings, got a ${typeof text}`);
    for (const w of splitWords(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const words = [...counts].map(([w, n]) => ({ ids: Array.from(utf8.encode(w)), n }));
  const merges: [number, number][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<number, { a: number; b: number; n: number }>();
    for (const { ids, n } of words) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = pairKey(ids[i], ids[i + 1]);
        const p = pairs.get(k);
        if (p === undefined) pairs.set(k, { a: ids[i], b: ids[i + 1], n });
        else p.n += n;
      }
    }
    let best: { a: number; b: number; n: number } | undefined;
    for (const p of pairs.values()) {
      if (best === undefined || p.n > best.n || (p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b)))) best = p;
    }
    if (best === undefined || best.n < minCount) break;
    const id = MERGE_BASE_ID + merges.length;
    merges.push([best.a, best.b]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === best.a && w.ids[i + 1] === best.b) {
          out.push(id);
          i++;
        } else out.push(w.ids[i]);
      }
      w.ids = out;
    }
  }
  return merges;
}

export class ByteTokenizer {
  readonly config: TokenizerConfig;
  readonly vocabSize: number;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly padId = PAD_ID;
  /** The UTF-8 bytes of every id (empty for the special ids). */
  private readonly bytesOf: Uint8Array[];
  private readonly ranks: Map<number, number>;
  private readonly wordCache = new Map<string, number[]>();

  constructor(config: Partial<TokenizerConfig> = {}) {
    this.config = tokenizerConfig(config);
    this.vocabSize = BYTE_VOCAB_SIZE + this.config.merges.length;
    this.bytesOf = [];
    for (let i = 0; i < 256; i++) this.bytesOf.push(Uint8Array.of(i));
    for (let i = 256; i < BYTE_VOCAB_SIZE; i++) this.bytesOf.push(new Uint8Array(0));
    this.ranks = new Map();
    this.config.merges.forEach(([a, b], r) => {
      const joined = new Uint8Array(this.bytesOf[a].length + this.bytesOf[b].length);
      joined.set(this.bytesOf[a]);
      joined.set(this.bytesOf[b], this.bytesOf[a].length);
      this.bytesOf.push(joined);
      if (!this.ranks.has(pairKey(a, b))) this.ranks.set(pairKey(a, b), r);
    });
  }

  /** L. */
  get maxLength(): number {
    return this.config.maxLength;
  }

  /** Text tokens of one prompt (no BOS/EOS), before truncation. */
  tokens(text: string): number[] {
    if (this.config.merges.length === 0) return Array.from(utf8.encode(text));
    const out: number[] = [];
    for (const w of splitWords(text)) {
      let ids = this.wordCache.get(w);
      if (ids === undefined) {
        ids = applyMerges(Array.from(utf8.encode(w)), this.ranks);
        if (this.wordCache.size < 100_000) this.wordCache.set(w, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /** Encodes prompts to [B, L] ids and mask (see the file header). */
  encode(texts: readonly string[], options: EncodeOptions = {}): EncodedText {
    const L = this.config.maxLength;
    const room = L - 2;
    const ids = new Int32Array(texts.length * L).fill(PAD_ID);
    const mask = new Float32Array(texts.length * L);
    texts.forEach((text, b) => {
      if (typeof text !== 'string') throw new Error(`ByteTokenizer.encode: prompt ${b} is a ${typeof text}, expected a string`);
      const tokens = this.tokens(text);
      let n = tokens.length;
      if (n > room) {
        n = room;
        // Keep whole characters: drop tokens while the first dropped one starts with a UTF-8 continuation byte (10xxxxxx).
        while (n > 0 && (this.bytesOf[tokens[n]][0] & 0xc0) === 0x80) n--;
        const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
        const unit = this.config.merges.length === 0 ? 'UTF-8 bytes' : 'tokens';
        options.onWarn?.(`prompt ${b} ("${shown}") has ${tokens.length} ${unit}; truncated to ${n} (maxLength ${L} includes BOS and EOS)`);
      }
      const row = b * L;
      ids[row] = BOS_ID;
      for (let i = 0; i < n; i++) ids[row + 1 + i] = tokens[i];
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

  /** The text of one row of ids (the tokens between BOS and EOS; invalid UTF-8 decodes to U+FFFD). */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === BOS_ID || id === PAD_ID) continue;
      if (id === EOS_ID) break;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`ByteTokenizer.decode: id ${id} at position ${i} is not a token of this vocabulary (size ${this.vocabSize})`);
      for (const byte of this.bytesOf[id]) bytes.push(byte);
    }
    return utf8Decoder.decode(Uint8Array.from(bytes));
  }
}
