/** Byte tokenizer: layout, Unicode, truncation at character boundaries, tensors. */
import * as tf from '@tensorflow/tfjs';
import { ByteTokenizer, BOS_ID, EOS_ID, PAD_ID, BYTE_VOCAB_SIZE, tokenizerConfig } from '../../src/models/tokenizer';
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
