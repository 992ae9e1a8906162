/**
 * Timestep spacings against numpy (diffusers' formulas with steps_offset = 0):
 *   import numpy as np; T = 1000
 *   for S in [50, 16, 7]:
 *     print(np.linspace(0, T - 1, S).round()[::-1].astype(np.int64).tolist())
 *     print((np.arange(0, S) * (T // S)).round()[::-1].astype(np.int64).tolist())
 *     print((np.round(np.arange(T, 0, -T / S)) - 1).astype(np.int64).tolist())
 */
import { samplingTimesteps, TimestepSpacing } from '../../src/sample/timesteps';

const REF: Record<number, Record<TimestepSpacing, number[]>> = {
  16: {
    linspace: [999, 932, 866, 799, 733, 666, 599, 533, 466, 400, 333, 266, 200, 133, 67, 0],
    leading: [930, 868, 806, 744, 682, 620, 558, 496, 434, 372, 310, 248, 186, 124, 62, 0],
    // 937 = round(937.5) - 1 and 811 = round(812.5) - 1 check numpy's half-to-even rounding
    trailing: [999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61],
  },
  7: {
    linspace: [999, 832, 666, 500, 333, 166, 0],
    leading: [852, 710, 568, 426, 284, 142, 0],
    trailing: [999, 856, 713, 570, 428, 285, 142],
  },
  50: {
    linspace: [
      999, 979, 958, 938, 917, 897, 877, 856, 836, 816, 795, 775, 754, 734, 714, 693, 673, 652, 632, 612, 591, 571, 550, 530, 510, 489, 469, 449, 428,
      408, 387, 367, 347, 326, 306, 285, 265, 245, 224, 204, 183, 163, 143, 122, 102, 82, 61, 41, 20, 0,
    ],
    leading: Array.from({ length: 50 }, (_, i) => 980 - 20 * i),
    trailing: Array.from({ length: 50 }, (_, i) => 999 - 20 * i),
  },
};

describe('samplingTimesteps', () => {
  for (const S of [16, 7, 50]) {
    for (const spacing of ['linspace', 'leading', 'trailing'] as TimestepSpacing[]) {
      it(`${spacing} S=${S} matches numpy`, () => {
        expect(Array.from(samplingTimesteps(1000, S, spacing))).toEqual(REF[S][spacing]);
      });
    }
  }

  it('all spacings give every timestep when S = T', () => {
    for (const spacing of ['linspace', 'leading', 'trailing'] as TimestepSpacing[]) {
      expect(Array.from(samplingTimesteps(200, 200, spacing))).toEqual(Array.from({ length: 200 }, (_, i) => 199 - i));
    }
  });

  it('validates steps and spacing', () => {
    expect(() => samplingTimesteps(100, 0, 'trailing')).toThrow(/steps must be an integer in \[1, T=100\], got 0/);
    expect(() => samplingTimesteps(100, 101, 'trailing')).toThrow(/got 101/);
    expect(() => samplingTimesteps(100, 10, 'uniform' as TimestepSpacing)).toThrow(/spacing must be one of/);
  });
});
