/* Fused output pass of one analog tile MVM (analogmed fast engine), plain C99, called via ctypes.
 *
 * For every element e of the raw MVM output y (normalised units), channel c = (e / inner) % C:
 *   v   = y[e] + sigma * N(0,1)              output noise (counter-based generator below)
 *   v   = round(v * inv_step) * step         ADC quantisation (half-even, as torch.round), if step > 0;
 *                                            inv_step = fl(1 / step): aihwkit divides, which differs only
 *                                            within ~1 ulp of a rounding tie (~1e-5 of outputs)
 *   v   = clamp(v, -bound, bound)            ADC range
 *   out = (acc[e] +) v * scale[c] (+ bias[c])
 * Gaussian numbers: pair p = e / 2 takes two 16-bit uniforms from one stateless keyed 32-bit hash of
 * (seed, p), then Box-Muller with float polynomials for log, sin and cos (branch-free, so the compiler
 * vectorises them). analogmed/analog/fast_kernel.py evaluates the
 * same float operations in torch (the fallback); build with -ffp-contract=off so no FMA changes them.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return x;
}

static inline uint32_t f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
/* mask ? a : b without branches (mask all ones or zero). */
static inline float fsel(uint32_t mask, float a, float b) { return u2f((mask & f2u(a)) | (~mask & f2u(b))); }

/* Round half to even for |x| < 2^22 (larger floats are integers already); exact, like torch.round. */
static inline float round_even(float x) {
  float r = (x + 12582912.0f) - 12582912.0f;
  return fsel((uint32_t)0 - (uint32_t)(fabsf(x) < 4194304.0f), r, x);
}

static inline float logf_poly(float x) { /* x in (0, 1]; |error| < 2.5e-6 (enough for Box-Muller's radius) */
  uint32_t b = f2u(x);
  int32_t e = (int32_t)((b >> 23) & 0xffu) - 126;
  float m = u2f((b & 0x807fffffu) | 0x3f000000u);      /* mantissa in [0.5, 1) */
  uint32_t small = (uint32_t)0 - (uint32_t)(m < 0.707106781186547524f);
  e = e - (int32_t)(small & 1u);
  m = fsel(small, (m + m) - 1.0f, m - 1.0f);            /* log(x) = e ln2 + log(1 + m), m in [-0.293, 0.414] */
  float fe = (float)e;
  float z = m * m;
  float y = 1.2644615769e-01f;                          /* log(1+m) = m - m^2/2 + m^3 P(m), P of degree 4 */
  y = y * m + -1.8256717920e-01f;                       /* (Chebyshev fit on the interval) */
  y = y * m + 2.0221647620e-01f;
  y = y * m + -2.4957883358e-01f;
  y = y * m + 3.3330881596e-01f;
  y = y * m * z;
  y = y + fe * -2.12194440e-4f;
  y = y + -0.5f * z;
  float r = m + y;
  return r + fe * 0.693359375f;
}

static inline void sincos2pi(float u, float* s_out, float* c_out) { /* angle 2*pi*u, u in (0, 1) */
  float j = round_even(u * 4.0f);
  float r = (u - j * 0.25f) * 6.28318530717958647692f;  /* [-pi/4, pi/4] */
  float z = r * r;
  float s = -1.9515295891e-4f;
  s = s * z + 8.3321608736e-3f;
  s = s * z + -1.6666654611e-1f;
  s = s * z * r + r;
  float c = 2.443315711809948e-5f;
  c = c * z + -1.388731625493765e-3f;
  c = c * z + 4.166664568298827e-2f;
  c = c * z * z - 0.5f * z + 1.0f;
  uint32_t q = (uint32_t)(int32_t)j & 3u;
  uint32_t odd = (uint32_t)0 - (q & 1u);                       /* quadrants 1, 3: swap sin and cos */
  float a = fsel(odd, c, s), bb = fsel(odd, s, c);
  uint32_t sgn_s = (q >> 1) << 31;                             /* quadrants 2, 3: -sin */
  uint32_t sgn_c = (((q + 1u) >> 1) & 1u) << 31;               /* quadrants 1, 2: -cos */
  float sn = u2f(f2u(a) ^ sgn_s);
  float cs = u2f(f2u(bb) ^ sgn_c);
  *s_out = sn; *c_out = cs;
}

#define BLOCK 512

/* Fill g[0 .. 2*npairs) with the Gaussian numbers of pairs first_pair .. first_pair + npairs
 * (npairs <= BLOCK): one keyed 32-bit hash per pair, h = H(H(p ^ k1) + k2), gives two 16-bit uniforms
 * (high and low half, centred in their bins; the radius reaches 4.9 sigma), then Box-Muller. Stage by
 * stage over the block (hash, then log/sqrt, then sin/cos): each loop has a short dependency chain, so the
 * out-of-order core overlaps iterations; the compiler vectorises every stage. */
static void gauss_block(uint32_t k1, uint32_t k2, int64_t first_pair, int npairs, float* g) {
  float u1[BLOCK], u2[BLOCK];
  for (int i = 0; i < npairs; ++i) {
    uint32_t h = lowbias32(lowbias32((uint32_t)(first_pair + i) ^ k1) + k2);
    u1[i] = ((float)(int32_t)(h >> 16) + 0.5f) * 1.52587890625e-05f;
    u2[i] = ((float)(int32_t)(h & 0xffffu) + 0.5f) * 1.52587890625e-05f;
  }
  for (int i = 0; i < npairs; ++i) u1[i] = sqrtf(-2.0f * logf_poly(u1[i]));
  for (int i = 0; i < npairs; ++i) {
    float s, co;
    sincos2pi(u2[i], &s, &co);
    g[2 * i] = u1[i] * co;
    g[2 * i + 1] = u1[i] * s;
  }
}

void analogmed_keys(uint64_t seed, uint32_t* k1, uint32_t* k2) {
  *k1 = lowbias32((uint32_t)seed ^ 0x9e3779b9U);
  *k2 = lowbias32((uint32_t)(seed >> 32) + 0x85ebca6bU);
}

/* y, out: n floats (out may equal acc storage; add != 0 accumulates into out); scale, bias: C floats. */
void analogmed_fused_out(const float* y, float* out, int64_t n, int64_t inner, int64_t C, const float* scale,
                         const float* bias, int add, float sigma, float step, float inv_step, float bound,
                         uint64_t seed) {
  uint32_t k1, k2;
  analogmed_keys(seed, &k1, &k2);
  float g[2 * BLOCK];
  for (int64_t e0 = 0; e0 < n; e0 += 2 * BLOCK) {  /* blocks of 2*BLOCK elements, pair-aligned */
    int64_t e1 = e0 + 2 * BLOCK < n ? e0 + 2 * BLOCK : n;
    if (sigma > 0.0f) gauss_block(k1, k2, e0 / 2, (int)((e1 - e0 + 1) / 2), g);
    int64_t e = e0;
    if (inner == 1) {  /* channel-last (Linear): channel = e % C; segments of one row */
      while (e < e1) {
        int64_t c0 = e % C;
        int64_t len = C - c0 < e1 - e ? C - c0 : e1 - e;
        const float* yy = y + e;
        const float* sc = scale + c0;
        const float* gp = g + (e - e0);
        float* oo = out + e;
        for (int64_t j = 0; j < len; ++j) {
          float v = yy[j];
          if (sigma > 0.0f) v = v + sigma * gp[j];
          if (step > 0.0f) { v = v * inv_step; v = round_even(v); v = v * step; }
          v = v > bound ? bound : (v < -bound ? -bound : v);
          float o = v * sc[j];
          if (add) o = oo[j] + o;
          if (bias) o = o + bias[c0 + j];
          oo[j] = o;
        }
        e += len;
      }
      continue;
    }
    while (e < e1) {  /* runs of one channel */
      int64_t row = e / inner;
      int64_t run_end = (row + 1) * inner;
      if (run_end > e1) run_end = e1;
      float sc = scale[row % C];
      float bs = bias ? bias[row % C] : 0.0f;
      const float* gp = g + (e - e0);
      if (sigma > 0.0f) {
        for (int64_t k = e; k < run_end; ++k) {
          float v = y[k] + sigma * gp[k - e];
          if (step > 0.0f) { v = v * inv_step; v = round_even(v); v = v * step; }
          v = v > bound ? bound : (v < -bound ? -bound : v);
          float o = v * sc;
          if (add) o = out[k] + o;
          if (bias) o = o + bs;
          out[k] = o;
        }
      } else {
        for (int64_t k = e; k < run_end; ++k) {
          float v = y[k];
          if (step > 0.0f) { v = v * inv_step; v = round_even(v); v = v * step; }
          v = v > bound ? bound : (v < -bound ? -bound : v);
          float o = v * sc;
          if (add) o = out[k] + o;
          if (bias) o = o + bs;
          out[k] = o;
        }
      }
      e = run_end;
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
