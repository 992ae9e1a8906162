/** Byte tokenizer and byte-level BPE: layout, Unicode, truncation at character boundaries, tensors, learning merges. */
import * as tf from '@tensorflow/tfjs';
import { ByteTokenizer, BOS_ID, EOS_ID, PAD_ID, BYTE_VOCAB_SIZE, MERGE_BASE_ID, tokenizerConfig, learnBpeMerges, splitWords } from '../../src/models/tokenizer';
import { useBackend } from '../helpers';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('ByteTokenizer', () => {
  it('frames UTF-8 bytes with BOS/EOS and pads (Python: list("hi".encode()) == [104, 105])', () => {
    const tok = new ByteTokenizer({ maxLength: 6 });
    const e = tok.encode(['hi', '']);
    expect(e.count).toBe(2);
    expect(e.length).toBe(6);
    expect(Array.from(e.ids)).toEqual([BOS_ID, 104, 105, EOS_ID, PAD_ID, PAD_ID, BOS_ID, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]);
    expect(Array.from(e.mask)).toEqual([1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]);
    expect(tok.vocabSize).toBe(BYTE_VOCAB_SIZE);
    expect([BOS_ID, EOS_ID, PAD_ID, BYTE_VOCAB_SIZE]).toEqual([256, 257, 258, 259]);
  });

  it('encodes any Unicode (multi-byte, emoji, lone surrogate) and decodes it back', () => {
    const tok = new ByteTokenizer({ maxLength: 32 });
    // Python: list("é7".encode()) == [195, 169, 55]; "😀".encode() == b'\xf0\x9f\x98\x80'
    const e = tok.encode(['é7', '😀', 'a\ud800b']);
    expect(Array.from(e.ids.subarray(0, 5))).toEqual([BOS_ID, 195, 169, 55, EOS_ID]);
    expect(Array.from(e.ids.subarray(32, 38))).toEqual([BOS_ID, 0xf0, 0x9f, 0x98, 0x80, EOS_ID]);
    expect(tok.decode(e.ids.subarray(0, 32))).toBe('é7');
    expect(tok.decode(e.ids.subarray(32, 64))).toBe('😀');
    expect(tok.decode(e.ids.subarray(64, 96))).toBe('a\ufffdb'); // a lone surrogate becomes U+FFFD, not an error
  });

  it('truncates long prompts at a character boundary and warns once per prompt', () => {
    const tok = new ByteTokenizer({ maxLength: 6 }); // room for 4 bytes
    const warnings: string[] = [];
    const e = tok.encode(['abcdefg', 'abcé', 'aébc', 'abcd'], { onWarn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/prompt 0 .* 7 UTF-8 bytes; truncated to 4/);
    expect(tok.decode(e.ids.subarray(0, 6))).toBe('abcd');
    // 'abcé' is 5 bytes: cutting at 4 would split é, so 3 bytes are kept.
    expect(Array.from(e.ids.subarray(6, 12))).toEqual([BOS_ID, 97, 98, 99, EOS_ID, PAD_ID]);
    expect(tok.decode(e.ids.subarray(12, 18))).toBe('aéb');
    expect(Array.from(e.mask.subarray(18, 24))).toEqual([1, 1, 1, 1, 1, 1]); // exactly fits: no warning
  });

  it('makes int32 ids and float32 mask tensors [B, L] without leaking', () => {
    const tok = new ByteTokenizer();
    const before = tf.memory().numTensors;
    const { ids, mask } = tok.encodeTensors(['a', 'bb']);
    expect(ids.shape).toEqual([2, 32]);
    expect(ids.dtype).toBe('int32');
    expect(mask.dtype).toBe('float32');
    const lengths = tf.sum(mask, 1);
    expect(Array.from(lengths.dataSync())).toEqual([3, 4]);
    lengths.dispose();
    tf.dispose([ids, mask]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a maxLength that cannot hold BOS, a byte and EOS', () => {
    expect(() => tokenizerConfig({ maxLength: 2 })).toThrow(/maxLength must be an integer >= 3/);
  });
});

describe('byte-level BPE', () => {
  it('splits words with their leading space, losing nothing', () => {
    expect(splitWords('a thick 37, slanted  left!')).toEqual(['a', ' thick', ' 37', ',', ' slanted', '  ', 'left', '!']);
    for (const t of ['', '  ', 'é ü 😀 x', '\ud800a', 'tab\tnew\nline']) expect(splitWords(t).join('')).toBe(t);
  });

  it('learns the most frequent pair first, deterministically, and stops below minCount', () => {
    // "ab" x3 and "ac" x1 as words: pairs (a,b): 3, (a,c): 1.
    const merges = learnBpeMerges(['ab ab', 'ab', 'ac'], { maxMerges: 10 });
    // Words: "ab" (2: first and third text), " ab" (1), "ac" (1). Pair counts: (a,b) 3, (32,a) 1, (a,c) 1.
    expect(merges[0]).toEqual([97, 98]);
    // After it nothing occurs twice: (32, ab) once, (a, c) once.
    expect(merges).toHaveLength(1);
    expect(learnBpeMerges(['ab ab', 'ab', 'ac'], { maxMerges: 10, minCount: 1 }).length).toBeGreaterThan(1);
    expect(learnBpeMerges(['ab ab', 'ab', 'ac'], { maxMerges: 0 })).toEqual([]);
    expect(learnBpeMerges(['x y', 'x y'], { maxMerges: 5 })).toEqual(learnBpeMerges(['x y', 'x y'], { maxMerges: 5 }));
  });

  it('turns frequent caption words into single tokens and round-trips any text', () => {
    const corpus = Array.from({ length: 50 }, (_, i) => `a thick ${i % 10} on a blue background`);
    const merges = learnBpeMerges(corpus, { maxMerges: 200 });
    const tok = new ByteTokenizer({ maxLength: 32, merges });
    expect(tok.vocabSize).toBe(BYTE_VOCAB_SIZE + merges.length);
    const t = tok.tokens('a thick 3 on a blue background');
    expect(t).toHaveLength(7); // a, " thick", " 3", " on", " a", " blue", " background"
    for (const id of t.filter((x) => x >= 256)) expect(id).toBeGreaterThanOrEqual(MERGE_BASE_ID);
    for (const text of ['a thick 3 on a blue background', 'a thin 8 on a red background', 'é 😀 unseen words', '']) {
      const e = tok.encode([text]);
      expect(tok.decode(e.ids)).toBe(text);
    }
    // Fewer tokens than bytes, which is the point.
    expect(t.length).toBeLessThan(Buffer.byteLength('a thick 3 on a blue background') / 3);
  });

  it('truncates at token boundaries that end on whole characters', () => {
    const merges = learnBpeMerges(['hello hello hello'], { maxMerges: 50 });
    const tok = new ByteTokenizer({ maxLength: 4, merges }); // room for 2 tokens
    const warnings: string[] = [];
    const e = tok.encode(['hello hello hello', 'aé'], { onWarn: (m) => warnings.push(m) });
    expect(tok.decode(e.ids.subarray(0, 4))).toBe('hello hello');
    expect(warnings[0]).toMatch(/prompt 0 .* 3 tokens; truncated to 2/);
    // "aé" is 3 byte tokens (no merges for it): keeping 2 would split é, so only "a" stays.
    expect(tok.decode(e.ids.subarray(4, 8))).toBe('a');
    expect(warnings).toHaveLength(2);
  });

  it('rejects merges that refer to ids not defined before them, and undecodable ids', () => {
    expect(() => tokenizerConfig({ merges: [[97, MERGE_BASE_ID]] })).toThrow(/merge 0 must join two ids that exist before it/);
    expect(() => tokenizerConfig({ merges: [[97, BOS_ID]] })).toThrow(/merge 0/);
    expect(() => tokenizerConfig({ merges: [[97, 98], [MERGE_BASE_ID, 99]] })).not.toThrow();
    const tok = new ByteTokenizer({ merges: [[97, 98]] });
    expect(() => tok.decode([MERGE_BASE_ID + 1])).toThrow(/id 260 at position 0 is not a token of this vocabulary \(size 260\)/);
    expect(tok.decode([BOS_ID, MERGE_BASE_ID, 99, EOS_ID])).toBe('abc');
  });
});
