/**
 * Converting weights between TF.js and PyTorch layouts, used only at import/export.
 *
 *   layout    TF.js (here)              PyTorch                 permutation
 *   conv2d    HWIO [kh, kw, in, out]    OIHW [out, in, kh, kw]  to torch [3, 2, 0, 1], back [2, 3, 1, 0]
 *   linear    [in, out]                 [out, in]               transpose (both ways)
 *   plain     unchanged (biases, norm scales, embedding tables)
 *
 * The layout of each parameter comes from `Module.parameterLayouts()`.
 */
import * as tf from '@tensorflow/tfjs';
import type { ParamLayout } from '../nn/module';

const RANK: Readonly<Record<Exclude<ParamLayout, 'plain'>, number>> = { conv2d: 4, linear: 2 };

const PERM: Readonly<Record<'toTorch' | 'fromTorch', Readonly<Record<Exclude<ParamLayout, 'plain'>, number[]>>>> = {
  toTorch: { conv2d: [3, 2, 0, 1], linear: [1, 0] },
  fromTorch: { conv2d: [2, 3, 1, 0], linear: [1, 0] },
};

function convert(
  tensors: ReadonlyMap<string, tf.Tensor>,
  layouts: ReadonlyMap<string, ParamLayout>,
  direction: 'toTorch' | 'fromTorch',
): Map<string, tf.Tensor> {
  // Validate everything before allocating anything.
  for (const [name, t] of tensors) {
    const layout = layouts.get(name);
    if (layout === undefined) {
      throw new Error(`tensor '${name}' has no layout (expected one of conv2d, linear, plain from Module.parameterLayouts())`);
    }
    if (layout !== 'plain' && t.rank !== RANK[layout]) {
      const expected = direction === 'toTorch' ? (layout === 'conv2d' ? 'HWIO' : '[in, out]') : layout === 'conv2d' ? 'OIHW' : '[out, in]';
      throw new Error(`tensor '${name}' (${layout}): expected rank ${RANK[layout]} (${expected}), got shape [${t.shape.join(', ')}]`);
    }
  }
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of tensors) {
    const layout = layouts.get(name) as ParamLayout;
    out.set(name, layout === 'plain' ? tf.clone(t) : tf.transpose(t, PERM[direction][layout]));
  }
  return out;
}

/**
 * TF.js layouts -> PyTorch layouts. Returns new tensors (the caller disposes them,
 * the inputs are untouched). Every tensor needs a layout entry.
 */
export function toTorchLayout(tensors: ReadonlyMap<string, tf.Tensor>, layouts: ReadonlyMap<string, ParamLayout>): Map<string, tf.Tensor> {
  return convert(tensors, layouts, 'toTorch');
}

/** PyTorch layouts -> TF.js layouts. The inverse of `toTorchLayout`; same ownership rules. */
export function fromTorchLayout(tensors: ReadonlyMap<string, tf.Tensor>, layouts: ReadonlyMap<string, ParamLayout>): Map<string, tf.Tensor> {
  return convert(tensors, layouts, 'fromTorch');
}
