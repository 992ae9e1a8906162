import * as tf from '@tensorflow/tfjs';
import { useBackend, expectClose } from '../helpers';
import { AdamW } from '../../src/train/adamw';

beforeAll(async () => useBackend('wasm'));

function lossOf(w: tf.Variable, b: tf.Variable, x: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.square(tf.add(tf.matMul(x, w), b))) as tf.Scalar;
}

describe('AdamW', () => {
  it('matches torch.optim.AdamW over 3 steps (decay on the matrix only)', async () => {
    /* Reference (torch 2.13.0+cpu):
       w = torch.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True); b = torch.tensor([0.1, -0.2], requires_grad=True)
       opt = torch.optim.AdamW([{'params': [w], 'weight_decay': 0.1}, {'params': [b], 'weight_decay': 0.0}], lr=0.01)
       x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]])
       3 x: loss = ((x @ w + b) ** 2).mean(); loss.backward(); opt.step()                                      */
    const w = tf.variable(tf.tensor2d([[0.5, -1.0], [2.0, 0.25]]));
    const b = tf.variable(tf.tensor1d([0.1, -0.2]));
    const x = tf.tensor2d([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]]);
    const opt = new AdamW({ weightDecay: 0.1, decayRank1: false, clipGradNorm: 0 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { grads, value } = tf.variableGrads(() => lossOf(w, b, x), [w, b]);
      const g = new Map([['w', grads[w.name]], ['b', grads[b.name]]]);
      const norm = opt.applyGradients([['w', w], ['b', b]], g, 0.01);
      tf.dispose([value, norm, ...Object.values(grads)]);
    }
    // Only the 4 moment tensors persist.
    expect(tf.memory().numTensors).toBe(before + 4);
    await expectClose(w, [0.4685427248477936, -0.9670556783676147, 1.9640446901321411, 0.27885928750038147], 1e-6);
    await expectClose(b, [0.07001391798257828, -0.17019003629684448], 1e-6);
    opt.dispose();
    tf.dispose([w, b, x]);
  });

  it('clips by global norm and reports the norm before clipping', async () => {
    const p = tf.variable(tf.zeros([2]));
    const opt = new AdamW({ clipGradNorm: 1, weightDecay: 0, beta1: 0, beta2: 0.5 });
    // g = (3, 4): norm 5. Adam's step is invariant to the gradient's scale,
    // so check the clipped moments instead: m = g * (1/5).
    const norm = opt.applyGradients([['p', p]], new Map([['p', tf.tensor1d([3, 4])]]), 0.5);
    expect((await norm.data())[0]).toBeCloseTo(5, 5);
    await expectClose(opt.stateTensors().get('m.p') as tf.Tensor, [0.6, 0.8], 1e-5);
    norm.dispose();
    opt.dispose();
    p.dispose();
  });

  it('refuses a gradient of the wrong shape, naming the parameter', () => {
    const p = tf.variable(tf.zeros([2]));
    const opt = new AdamW();
    expect(() => opt.applyGradients([['layer.weight', p]], new Map([['layer.weight', tf.zeros([3])]]), 0.1)).toThrow(/layer\.weight/);
    opt.dispose();
    p.dispose();
  });

  it('restores its state exactly (resume gives identical updates)', async () => {
    const run = async (split: boolean): Promise<Float32Array> => {
      const p = tf.variable(tf.tensor1d([1, -2, 3]));
      let opt = new AdamW({ weightDecay: 0.05, decayRank1: true });
      for (let i = 0; i < 4; i++) {
        if (split && i === 2) {
          const saved = new Map([...opt.stateTensors()].map(([k, t]) => [k, tf.clone(t)]));
          const steps = opt.stepCount;
          opt.dispose();
          opt = new AdamW({ weightDecay: 0.05, decayRank1: true });
          opt.loadState(steps, saved);
          tf.dispose([...saved.values()]);
        }
        const g = tf.tidy(() => tf.mul(p, tf.scalar(i + 1)));
        const n = opt.applyGradients([['p', p]], new Map([['p', g]]), 0.1);
        tf.dispose([g, n]);
      }
      const out = (await p.data()) as Float32Array;
      opt.dispose();
      p.dispose();
      return out;
    };
    expect(Array.from(await run(true))).toEqual(Array.from(await run(false)));
  });
});
