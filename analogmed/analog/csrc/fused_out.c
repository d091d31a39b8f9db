/* Fused output pass of one analog tile MVM (analogmed fast engine), plain C99, called via ctypes.
 *
 * For every element e of the raw MVM output y (normalised units), channel c = (e / inner) % C:
 *   v   = y[e] + sigma * N(0,1)              output noise (counter-based generator below)
 *   v   = round(v * inv_step) * step         ADC quantisation (half-even, as torch.round), if step > 0;
 *                                            inv_step = fl(1 / step): aihwkit divides, which differs only
 *                                            within ~1 ulp of a rounding tie (~1e-5 of outputs)
 *   v   = clamp(v, -bound, bound)            ADC range
 *   out = (acc[e] +) v * scale[c] (+ bias[c])
 * Gaussian numbers: pair p = e / 2 takes two 16-bit indices from one stateless keyed 32-bit hash of
 * (seed, p) and looks both up in a table of 65536 standard-normal quantiles (built and passed in by
 * analogmed/analog/fast_kernel.py, whose torch fallback indexes the same table, so both give the same
 * bits); build with -ffp-contract=off so no FMA changes the float operations.
 */
#include <math.h>
#include <stdint.h>

static inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return x;
}

/* Round half to even (the default rounding mode), like torch.round; one instruction with SSE4.1 / ARMv8. */
static inline float round_even(float x) { return rintf(x); }

#define BLOCK 512

/* Fill g[0 .. 2*npairs) with the Gaussian numbers of pairs first_pair .. first_pair + npairs
 * (npairs <= BLOCK): one keyed 32-bit hash per pair, h = H(H(p ^ k1) + k2), gives two 16-bit indices
 * (high and low half) into `table`, the 65536 standard-normal quantiles that fast_kernel.py passes in.
 * The hash loop vectorises; the lookups are plain loads (the table, 256 KB, stays in L2). */
static void gauss_block(const float* table, uint32_t k1, uint32_t k2, int64_t first_pair, int npairs, float* g) {
  uint32_t h[BLOCK];
  for (int i = 0; i < npairs; ++i) h[i] = lowbias32(lowbias32((uint32_t)(first_pair + i) ^ k1) + k2);
  for (int i = 0; i < npairs; ++i) {
    g[2 * i] = table[h[i] >> 16];
    g[2 * i + 1] = table[h[i] & 0xffffu];
  }
}

void analogmed_keys(uint64_t seed, uint32_t* k1, uint32_t* k2) {
  *k1 = lowbias32((uint32_t)seed ^ 0x9e3779b9U);
  *k2 = lowbias32((uint32_t)(seed >> 32) + 0x85ebca6bU);
}

/* One run of elements: v = y (+ sigma g), ADC, clamp, then o = (out +) v * scale (+ bias). A scalar
 * scale / bias (one channel: conv runs) when sc / bs are NULL, else per-element arrays (channel-last). */
static inline void out_run(const float* y, float* out, const float* restrict g, int64_t len, float sigma,
                           float step, float inv_step, float bound, float s1, float b1, const float* restrict sc,
                           const float* restrict bs, int add, int has_bias) {
  for (int64_t k = 0; k < len; ++k) {
    float v = y[k];
    if (sigma > 0.0f) v = v + sigma * g[k];
    if (step > 0.0f) { v = v * inv_step; v = round_even(v); v = v * step; }
    v = v > bound ? bound : (v < -bound ? -bound : v);
    float o = v * (sc ? sc[k] : s1);
    if (add) o = out[k] + o;
    if (has_bias) o = o + (bs ? bs[k] : b1);
    out[k] = o;
  }
}

#define REP_MAX 256  /* channel-last with C <= REP_MAX: scale / bias repeated along a block, one loop per block */

/* y, out: n floats (out may equal y; add != 0 accumulates into out); scale, bias: C floats;
 * table: 65536 floats (see gauss_block). */
void analogmed_fused_out(const float* y, float* out, int64_t n, int64_t inner, int64_t C, const float* scale,
                         const float* bias, int add, float sigma, float step, float inv_step, float bound,
                         uint64_t seed, const float* table) {
  uint32_t k1, k2;
  analogmed_keys(seed, &k1, &k2);
  float g[2 * BLOCK];
  float srep[2 * BLOCK + REP_MAX], brep[2 * BLOCK + REP_MAX];
  const int has_bias = bias != 0;
  const int rep = inner == 1 && C <= REP_MAX;
  if (rep) {
    int64_t m = n + C < 2 * BLOCK + C ? n + C : 2 * BLOCK + C;
    for (int64_t i = 0; i < m; ++i) { srep[i] = scale[i % C]; brep[i] = has_bias ? bias[i % C] : 0.0f; }
  }
  for (int64_t e0 = 0; e0 < n; e0 += 2 * BLOCK) {  /* blocks of 2*BLOCK elements, pair-aligned */
    int64_t e1 = e0 + 2 * BLOCK < n ? e0 + 2 * BLOCK : n;
    if (sigma > 0.0f) gauss_block(table, k1, k2, e0 / 2, (int)((e1 - e0 + 1) / 2), g);
    if (rep) {  /* channel-last (Linear), few channels: channel of e0 + j is srep[e0 % C + j] */
      int64_t off = e0 % C;
      out_run(y + e0, out + e0, g, e1 - e0, sigma, step, inv_step, bound, 0.0f, 0.0f, srep + off, brep + off, add,
              has_bias);
      continue;
    }
    int64_t e = e0;
    while (e < e1) {  /* runs of one channel (inner > 1) or segments of one row (channel-last) */
      int64_t len, c0 = 0;
      if (inner == 1) {
        c0 = e % C;
        len = C - c0 < e1 - e ? C - c0 : e1 - e;
      } else {
        int64_t row = e / inner, run_end = (row + 1) * inner;
        len = (run_end < e1 ? run_end : e1) - e;
        c0 = row % C;
      }
      if (inner == 1)
        out_run(y + e, out + e, g + (e - e0), len, sigma, step, inv_step, bound, 0.0f, 0.0f, scale + c0,
                has_bias ? bias + c0 : 0, add, has_bias);
      else
        out_run(y + e, out + e, g + (e - e0), len, sigma, step, inv_step, bound, scale[c0],
                has_bias ? bias[c0] : 0.0f, 0, 0, add, has_bias);
      e += len;
    }
  }
}

/* Input side of one tile (DAC), elementwise over the feature map (commutes with im2col; 0 stays 0).
 * A perfect tile (no DAC): v = clamp(x, -r, r) / ir (if has_ir), aihwkit's operations exactly.
 * Otherwise, with inv = fl(1 / (ir * step)) (ir = 1 without a static input range):
 *   v = clamp(x, -r, r) * inv              input range and DAC step in one multiply (aihwkit divides
 *   v = round(v) * step                    twice; the results differ only where x / (ir * step) lies
 *   v = clamp(v, -bound, bound)            within ~2 float ulps of a rounding tie: ~1e-5 of inputs)
 * out may equal x. */
void analogmed_dac(const float* x, float* out, int64_t n, int has_ir, float r, float ir, int perfect, float step,
                   float inv, float bound) {
  if (perfect) {
    for (int64_t k = 0; k < n; ++k) {
      float v = x[k];
      if (has_ir) { v = v > r ? r : (v < -r ? -r : v); v = v / ir; }
      out[k] = v;
    }
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    float v = x[k];
    if (has_ir) v = v > r ? r : (v < -r ? -r : v);
    if (step > 0.0f) { v = v * inv; v = round_even(v); v = v * step; }
    else if (has_ir) v = v / ir;
    v = v > bound ? bound : (v < -bound ? -bound : v);
    out[k] = v;
  }
}

/* col2im of a transposed conv with non-overlapping taps (kernel == stride, no padding): a pure copy
 *   out[n][i0*k0 + t0][i1*k1 + t1][i2*k2 + t2] = cols[n][t0][t1][t2][i0][i1][i2]
 * for n < nb (batch x channels); 2D: k0 = s0 = 1. */
void analogmed_untap(const float* cols, float* out, int64_t nb, int64_t k0, int64_t k1, int64_t k2, int64_t s0,
                     int64_t s1, int64_t s2) {
  const int64_t L = s0 * s1 * s2, T = k0 * k1 * k2, W = s2 * k2, H = s1 * k1;
  for (int64_t n = 0; n < nb; ++n) {
    const float* c = cols + n * T * L;
    float* o = out + n * T * L;
    for (int64_t i0 = 0; i0 < s0; ++i0)
      for (int64_t t0 = 0; t0 < k0; ++t0)
        for (int64_t i1 = 0; i1 < s1; ++i1)
          for (int64_t t1 = 0; t1 < k1; ++t1) {
            float* row = o + ((i0 * k0 + t0) * H + (i1 * k1 + t1)) * W;
            const float* src = c + ((t0 * k1 + t1) * k2) * L + (i0 * s1 + i1) * s2;
            if (k2 == 2) {
              const float* a = src;
              const float* b = src + L;
              for (int64_t i2 = 0; i2 < s2; ++i2) { row[2 * i2] = a[i2]; row[2 * i2 + 1] = b[i2]; }
            } else {
              for (int64_t t2 = 0; t2 < k2; ++t2) {
                const float* a = src + t2 * L;
                for (int64_t i2 = 0; i2 < s2; ++i2) row[i2 * k2 + t2] = a[i2];
              }
            }
          }
  }
}
