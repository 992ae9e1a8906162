/**
 * Forward equivalence with the PyTorch peer (/work/shared/peers/torch_unet.py).
 *
 * Fixture test/fixtures/unet_ref_base8_cross.safetensors was made once with
 *
 *   cd /tmp && python3 /work/shared/peers/torch_unet.py --base 8 --cross-attn \
 *       --export-reference /work/main/test/fixtures/unet_ref_base8_cross.safetensors
 *
 * (torch 2.13.0+cpu; it printed "161185 parameters, output (2, 1, 32, 32)"). It holds
 * every parameter under its PyTorch name (random, scale 0.2, so every one matters;
 * conv OIHW, Linear [out, in]), a fixed input `input.x` [2,1,32,32] NCHW, `input.t`
 * = [3, 777] int64, `input.context` [2,8,64], the model's `output` NCHW, and the
 * architecture JSON in __metadata__.config. torch is not needed to run this test.
 *
 * Measured: max |ours - torch| = 2.8e-7 against max |torch| = 0.232, i.e. relative error 1.2e-6 on
 * wasm (7.4e-7 on the cpu backend); the bound below is 1e-4.
 */
import * as tf from '@tensorflow/tfjs';
import * as path from 'path';
import { useBackend, relativeError } from '../helpers';
import { readSafetensorsHeader } from '../../src/io/safetensorsFile';
import { unetConfigFromPeer, PeerUNetConfig } from '../../src/models/unetTorch';
import { loadTorchUNet } from '../../src/node/pipelineParts';
import { UNet } from '../../src/models/unet';
import { Rng } from '../../src/backend/random';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'unet_ref_base8_cross.safetensors');

beforeAll(async () => {
  await useBackend('wasm');
});

describe('UNet vs PyTorch peer reference', () => {
  test('the peer config maps to our config', async () => {
    const header = await readSafetensorsHeader(FIXTURE);
    const peer = JSON.parse(header.metadata.config) as PeerUNetConfig;
    expect(peer).toMatchObject({ channels: 1, size: 32, base: 8, mults: [1, 2, 2], num_res: 2, attn_res: [8], heads: 4, groups: 8, temb_in: 32, temb_dim: 128, ctx_dim: 64 });
    expect(header.metadata.torch).toBe('2.13.0+cpu');
    const cfg = unetConfigFromPeer(peer);
    expect(cfg).toMatchObject({
      inChannels: 1,
      outChannels: 1,
      sampleSize: 32,
      baseChannels: 8,
      channelMults: [1, 2, 2],
      numResBlocks: 2,
      attentionResolutions: [8],
      heads: 4,
      groups: 8,
      timeEmbeddingInputDim: 32,
      timeEmbeddingDim: 128,
      contextDim: 64,
      numClasses: null,
      addPooledContextToTime: false,
      dropout: 0,
    });
    // Every tensor of the file except the 4 inputs/outputs is a parameter of ours, and vice versa.
    const before = tf.memory().numTensors;
    const unet = new UNet(cfg, new Rng(0));
    const ours = unet.namedParameters().map(([n, v]) => [n, v.shape] as const);
    const theirs = [...header.tensors.entries()].filter(([n]) => !n.startsWith('input.') && n !== 'output');
    expect(ours.map(([n]) => n).sort()).toEqual(theirs.map(([n]) => n).sort());
    expect(ours.map(([n]) => n)).toEqual(theirs.map(([n]) => n)); // same order as the peer's state_dict, too
    unet.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('reproduces the peer output to float32 precision (161185 parameters)', async () => {
    const before = tf.memory().numTensors;
    const { unet, extras } = await loadTorchUNet(FIXTURE);
    try {
      expect(unet.numParameters()).toBe(161185);
      expect([...extras.keys()].sort()).toEqual(['input.context', 'input.t', 'input.x', 'output']);
      const get = (n: string): tf.Tensor => extras.get(n) as tf.Tensor;
      expect(get('input.t').dtype).toBe('int32');
      expect(Array.from(await get('input.t').data())).toEqual([3, 777]);
      const y = tf.tidy(() =>
        unet.apply({
          x: tf.transpose(get('input.x'), [0, 2, 3, 1]) as tf.Tensor4D, // NCHW -> NHWC
          t: get('input.t') as tf.Tensor1D,
          context: get('input.context') as tf.Tensor3D,
        }),
      );
      const ref = tf.transpose(get('output'), [0, 2, 3, 1]);
      expect(y.shape).toEqual([2, 32, 32, 1]);
      expect(ref.shape).toEqual([2, 32, 32, 1]);
      const err = relativeError(await y.data(), await ref.data());
      y.dispose();
      ref.dispose();
      expect(err).toBeLessThan(1e-4);
      // A wrong time embedding (the largest single deviation we could make by mistake) is far off.
      const yWrongT = tf.tidy(() =>
        unet.apply({
          x: tf.transpose(get('input.x'), [0, 2, 3, 1]) as tf.Tensor4D,
          t: tf.tensor1d([3, 778], 'int32'),
          context: get('input.context') as tf.Tensor3D,
        }),
      );
      const ref2 = tf.transpose(get('output'), [0, 2, 3, 1]);
      expect(relativeError(await yWrongT.data(), await ref2.data())).toBeGreaterThan(1e-3);
      yWrongT.dispose();
      ref2.dispose();
    } finally {
      unet.dispose();
      extras.forEach((t) => t.dispose());
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
