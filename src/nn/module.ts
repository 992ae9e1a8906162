/**
 * A small module system. A `Module` owns named `tf.Variable`s and child modules;
 * `namedParameters()` yields dotted paths exactly as a PyTorch module tree would
 * name them (`down.1.conv1.weight`), which map 1:1 onto safetensors keys.
 *
 * Weights keep TF.js layouts (conv kernels HWIO, dense [in, out]); converting to
 * PyTorch layouts happens only at import/export (see io/torchLayout.ts).
 *
 * Subclasses register parameters and children in their constructor and expose a
 * typed `apply(...)` that is a pure function of its inputs and the current weights.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * How a parameter's TF.js layout differs from PyTorch's:
 * 'conv2d' kernels are HWIO here and OIHW in PyTorch; 'linear' weights are
 * [in, out] here and [out, in] in PyTorch; 'plain' tensors (biases, norms,
 * embedding tables) are identical.
 */
export type ParamLayout = 'conv2d' | 'linear' | 'plain';

export class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly ownLayouts = new Map<string, ParamLayout>();
  private readonly childModules = new Map<string, Module>();
  private readonly frozenParams = new Set<tf.Variable>();

  /** Registers a parameter (takes ownership of `init`, which becomes the variable's value). */
  protected addParameter(name: string, init: tf.Tensor, layout: ParamLayout = 'plain'): tf.Variable {
    assertName(name, this.ownParams, this.childModules);
    const v = tf.variable(init, true);
    init.dispose();
    this.ownParams.set(name, v);
    this.ownLayouts.set(name, layout);
    return v;
  }

  /** Registers a child module under `name` (a list index is just a name such as '0'). */
  protected addChild<M extends Module>(name: string, child: M): M {
    assertName(name, this.ownParams, this.childModules);
    this.childModules.set(name, child);
    return child;
  }

  /** Child modules in registration order, with their names. */
  namedChildren(): Array<[string, Module]> {
    return [...this.childModules.entries()];
  }

  /** All parameters as [dotted name, variable], depth first, in registration order. */
  namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.ownParams) out.push([prefix + n, v]);
    for (const [n, c] of this.childModules) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** The layout tag of every parameter by dotted name (for PyTorch import/export). */
  parameterLayouts(prefix = ''): Map<string, ParamLayout> {
    const out = new Map<string, ParamLayout>();
    for (const [n, l] of this.ownLayouts) out.set(prefix + n, l);
    for (const [n, c] of this.childModules) c.parameterLayouts(`${prefix}${n}.`).forEach((l, k) => out.set(k, l));
    return out;
  }

  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  /** Parameters that are not frozen (anywhere in the tree). */
  namedTrainableParameters(): Array<[string, tf.Variable]> {
    return this.namedParameters().filter(([, v]) => !this.isFrozen(v));
  }

  /** Number of scalar parameters (all, or only trainable ones). */
  numParameters(trainableOnly = false): number {
    const list = trainableOnly ? this.namedTrainableParameters() : this.namedParameters();
    return list.reduce((n, [, v]) => n + v.size, 0);
  }

  /** Freezes every parameter of this module and its children (they are excluded from training). */
  freeze(): this {
    this.walk((m) => m.ownParams.forEach((v) => m.frozenParams.add(v)));
    return this;
  }

  unfreeze(): this {
    this.walk((m) => m.frozenParams.clear());
    return this;
  }

  private isFrozen(v: tf.Variable): boolean {
    let frozen = false;
    this.walk((m) => {
      if (m.frozenParams.has(v)) frozen = true;
    });
    return frozen;
  }

  private walk(fn: (m: Module) => void): void {
    fn(this);
    for (const c of this.childModules.values()) c.walk(fn);
  }

  /** Current weights by dotted name (the variables themselves; do not dispose them). */
  stateDict(): Map<string, tf.Tensor> {
    return new Map(this.namedParameters());
  }

  /**
   * Assigns weights by dotted name. Every parameter must be present with its exact
   * shape; with `strict` (default) unknown names are an error too.
   */
  loadStateDict(tensors: ReadonlyMap<string, tf.Tensor>, options: { strict?: boolean; source?: string } = {}): void {
    const strict = options.strict ?? true;
    const where = options.source ? ` (${options.source})` : '';
    const params = this.namedParameters();
    const missing = params.filter(([n]) => !tensors.has(n)).map(([n]) => n);
    if (missing.length > 0) {
      throw new Error(`missing ${missing.length} parameter(s)${where}: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
    }
    if (strict) {
      const known = new Set(params.map(([n]) => n));
      const extra = [...tensors.keys()].filter((n) => !known.has(n));
      if (extra.length > 0) {
        throw new Error(`unexpected ${extra.length} tensor(s)${where}: ${extra.slice(0, 8).join(', ')}${extra.length > 8 ? ', ...' : ''}`);
      }
    }
    for (const [n, v] of params) {
      const t = tensors.get(n) as tf.Tensor;
      if (!shapesEqual(t.shape, v.shape)) {
        throw new Error(`parameter '${n}'${where}: expected shape [${v.shape}], got [${t.shape}]`);
      }
    }
    for (const [n, v] of params) {
      const t = tensors.get(n) as tf.Tensor;
      if (t.dtype === 'float32') {
        v.assign(t);
      } else {
        const asFloat = tf.cast(t, 'float32');
        v.assign(asFloat);
        asFloat.dispose();
      }
    }
  }

  /** Copies of all weights (caller owns them), e.g. for an EMA or a snapshot. */
  cloneWeights(): Map<string, tf.Tensor> {
    return new Map(this.namedParameters().map(([n, v]) => [n, tf.clone(v)]));
  }

  dispose(): void {
    for (const v of this.ownParams.values()) v.dispose();
    for (const c of this.childModules.values()) c.dispose();
  }
}

function assertName(name: string, params: Map<string, unknown>, children: Map<string, unknown>): void {
  if (name.length === 0 || name.includes('.')) throw new Error(`invalid parameter/module name '${name}': must be non-empty without '.'`);
  if (params.has(name) || children.has(name)) throw new Error(`name '${name}' registered twice`);
}

export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
