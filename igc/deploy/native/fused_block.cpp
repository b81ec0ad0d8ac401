// igc's fused inference kernel for one IGC block (see igc/deploy/native/__init__.py).
//
// One call computes   y = [x +] post( act( spatial( pre(x) ) ) )   on NHWC float32, where
// pre and post are linear segments of grouped 1x1 factors (each reads its input channels
// through an index table: the permutations between factors cost nothing), the last factor
// of a segment adds its folded bias and activation, and an optional trailing permutation is
// one gather in cache (IGCV2's interleave of 8 branches: register transposes). The spatial
// convolution is a grouped KxK convolution with as many inputs as outputs per group
// (depthwise: 1), written as 2*kg-1 channel "diagonals" so that every load is a
// contiguous vector. Work: (image, band of output rows); each band runs
// tiles of `tile_rows` output rows whose pre-stage rows are kept in a rolling buffer (each
// expanded row is computed once). fused_chain runs several blocks (and a stem) row by row
// in one call, each map between them in a ring of rows (run_tile, produce).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;
#else
constexpr int VL = 8;
#endif
typedef float vf __attribute__((vector_size(VL * sizeof(float))));

inline vf vload(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf vsplat(float s) {  // one vbroadcastss
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(s);
#elif defined(__AVX__)
  return (vf)_mm256_set1_ps(s);
#else
  return vf{} + s;
#endif
}
inline vf vload_n(const float* p, int n) {  // the first n lanes, zeros after
  if (n >= VL) return vload(p);
#if defined(__AVX512F__)
  return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#else
  float t[VL] = {0};
  for (int i = 0; i < n; ++i) t[i] = p[i];
  return vload(t);
#endif
}
inline void vstore_n(float* p, vf v, int n) {  // the first n lanes only
  if (n >= VL) { vstore(p, v); return; }
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#else
  float t[VL];
  vstore(t, v);
  for (int i = 0; i < n; ++i) p[i] = t[i];
#endif
}
// acc + a * b rounded once. Written out, not left to -ffp-contract: GCC left some inlined
// copies of `acc += a * b` as a multiply and an add (the half-vector product of one
// pixel), so the same sum differed in the last bit with the pixels per thread.
inline vf vfma(vf a, vf b, vf acc) {
#if defined(__AVX512F__)
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc);
#elif defined(__FMA__)
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc);
#else
  return acc + a * b;
#endif
}
inline vf vmax(vf a, vf b) {
#if defined(__AVX512F__)
  return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
  return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#else
  return a > b ? a : b;
#endif
}
inline vf vmin(vf a, vf b) {
#if defined(__AVX512F__)
  return (vf)_mm512_min_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
  return (vf)_mm256_min_ps((__m256)a, (__m256)b);
#else
  return a < b ? a : b;
#endif
}
// One max (and one min) per vector: the vector extension's `a > b ? a : b` compiles to a
// compare and a blend, which doubled the epilogue of short products.
inline vf activate(vf v, int act) {
  if (act == 0) return v;
  v = vmax(v, vf{});
  if (act == 2) v = vmin(v, vsplat(6.f));
  return v;
}
inline float activate1(float v, int act) {
  if (act == 0) return v;
  v = v > 0.f ? v : 0.f;
  if (act == 2) v = v < 6.f ? v : 6.f;
  return v;
}
inline int round_up(int a, int b) { return (a + b - 1) / b * b; }

// A branch's weights, W[g*o + r][j] for its output r and input j, are rows of opad
// floats, w[g][j][r] (G, k, opad); a branch wider than kPanelFrom floats is stored in
// panels of kPanel columns instead (the last one narrower), each panel's rows
// contiguous: (G, panels, k, width). A pass over 4 vectors of a 1280-wide branch read
// 256 bytes of every 5 KiB row, a page apart each few rows (the prefetchers stop at
// pages), and now reads one stream. igc.deploy.chain.fused packs them so.
constexpr int kPanel = 64, kPanelFrom = 96;

struct Factor {
  int G, k, o, opad, act;
  const float* w;     // (G, k, opad), in panels where opad > kPanelFrom (above)
  const int* idx;     // (G*k): input position g*k+j reads channel idx[g*k+j]
  const float* bias;  // (G*o) or nullptr
};

struct Segment {
  std::vector<Factor> factors;
  const int* tail = nullptr;  // out channel c = last factor's channel tail[c]
  bool interleave8 = false;   // tail[c] == (c % 8) * (out / 8) + c / 8, out % 128 == 0
  int out = 0;                // output channels
  int width = 0;              // widest factor output, padded
};

// Which 1x1 product runs (benchmarks/pointwise.py): 0 the micro-kernel, -1 ATen's GEMM
// per branch per tile (the inputs gathered into a (P, k) block first), the alternative
// measured against it; -2 the micro-kernel with every trailing permutation as gathers
// (no register transposes; benchmarks and tests).
int g_variant = 0;
// Which depthwise pass runs (benchmarks): 0 the 3x3 register-blocked pass where it applies,
// 1 the generic loop everywhere, 2 the 3x3 pass with its input loads never pinned
// (run_spatial), 3 the 3x3 pass one output row per register block (dw3_rows).
int g_dw_variant = 0;
// Parts of fused_block left out, for profiling only (benchmarks/kernel_profile.py; the
// output is then wrong): 1 the pre segment, 2 the spatial pass, 4 the post segment,
// 8 the trailing permutation gathers (a plain copy instead), 16 the per-call zeroing of the
// input ring's margins (zero_margins); and, for comparisons, 32: zero the ring and the
// spatial result whole on every call (the kernel's behaviour before zero_margins).
int g_skip = 0;
// Pixel strides (floats) of the input ring, the spatial result and the 1x1 scratch rows
// that are multiples of 1 KiB get one cache line more: at 256-2048 channels every pixel
// of a register block (8-10 pixels in a depthwise row, 6-12 in a 1x1 pass) otherwise
// maps to the same few L1 sets (4 KiB apart: the same set), and the loads miss to L2
// (0.88-0.89x IGCV2-1.0's block sum, 0.98x MobileNetV1-1.0's; benchmarks switch it off
// with set_stride_pad(0)).
int g_stride_pad = 1;
// Branches of at most 8 outputs on half vectors (run_factor_half); 0: on full vectors with
// the upper lanes masked (benchmarks compare the two with set_half).
int g_half = 1;
// Blocks without a pre segment read their input rows in place (spatial_direct); 0: copy
// them into the ring as other blocks do (benchmarks and tests compare the two).
int g_direct = 1;
inline int padded_stride(int n) { return g_stride_pad && n % 256 == 0 ? n + 16 : n; }

// The weights of branch g's outputs from column c0 on, and `ld`, the floats between
// their rows (a pass never crosses a panel).
inline const float* branch_weights(const Factor& f, int g, int c0, int& ld) {
  const float* base = f.w + (size_t)g * f.k * f.opad;
  if (f.opad <= kPanelFrom) {
    ld = f.opad;
    return base + c0;
  }
  const int p0 = c0 / kPanel * kPanel;
  ld = std::min(kPanel, f.opad - p0);
  return base + (size_t)f.k * p0 + (c0 - p0);
}

void run_factor_aten(const Factor& f, const float* const* in, float* const* out,
                     const float* const* res, int P) {
  thread_local std::vector<float> a;
  a.resize((size_t)P * f.k);
  at::Tensor c = at::empty({P, f.opad}, at::kFloat);
  thread_local std::vector<float> rows;  // the branch's weights as (k, opad) rows
  rows.resize((size_t)f.k * f.opad);
  for (int g = 0; g < f.G; ++g) {
    for (int c0 = 0; c0 < f.opad; c0 += kPanel) {
      int ld;
      const float* w = branch_weights(f, g, c0, ld);
      const int n = std::min(f.opad - c0, f.opad <= kPanelFrom ? f.opad : kPanel);
      for (int j = 0; j < f.k; ++j)
        std::memcpy(rows.data() + (size_t)j * f.opad + c0, w + (size_t)j * ld,
                    n * sizeof(float));
    }
    const int* ix = f.idx + (size_t)g * f.k;
    for (int p = 0; p < P; ++p)
      for (int j = 0; j < f.k; ++j) a[(size_t)p * f.k + j] = in[p][ix[j]];
    const at::Tensor A = at::from_blob(a.data(), {P, f.k}, at::kFloat);
    const at::Tensor Wt = at::from_blob(rows.data(), {f.k, f.opad}, at::kFloat);
    at::mm_out(c, A, Wt);
    const float* cp = c.data_ptr<float>();
    for (int p = 0; p < P; ++p)
      for (int r = 0; r < f.o; ++r) {
        const int ch = g * f.o + r;
        float v = activate1(cp[(size_t)p * f.opad + r] + (f.bias ? f.bias[ch] : 0.f), f.act);
        out[p][ch] = res ? v + res[p][ch] : v;
      }
  }
}

// The 1x1 micro-kernel: PB pixels x NV vectors of one branch's outputs, acc[p][v] = bias +
// sum_j in[p][ix[j]] * w[j][v], weights held in registers, inputs broadcast. A pass covers
// a branch's whole output width (up to 6 vectors; wider branches in passes of 4), so each
// broadcast feeds every output vector; PB gives 18-24 accumulators (8 for one vector:
// more pixels need more pointer registers than there are); the activation is a template
// parameter; every loop is unrolled, so the accumulators never leave the registers (the
// earlier kernel spilled them around each call and split branches into passes of 4, 2
// and 1 vectors: up to 1.7x slower on short products, benchmarks/pointwise.py).
constexpr int pb_for(int nv) {
  return VL == 16 ? (nv == 1 ? 8 : nv == 2 ? 12 : nv == 3 ? 8 : nv == 4 ? 6 : 4)
                  : (nv == 1 ? 8 : nv == 2 ? 6 : nv == 3 ? 4 : nv == 4 ? 3 : 2);
}

template <int PB, int NV, int ACT>
void micro(const float* const* in, float* const* out, const float* const* res, const int* ix,
           const float* w, int k, int ld, const float* bias, int ch0, int nlast) {
  vf acc[PB][NV];
  _Pragma("GCC unroll 32")
  for (int v = 0; v < NV; ++v) {
    const vf b = bias ? vload_n(bias + ch0 + v * VL, v == NV - 1 ? nlast : VL) : vf{};
    _Pragma("GCC unroll 32")
    for (int p = 0; p < PB; ++p) acc[p][v] = b;
  }
  const float* src[PB];
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) src[p] = in[p];
  for (int j = 0; j < k; ++j, w += ld) {
    vf wv[NV];
    _Pragma("GCC unroll 32")
    for (int v = 0; v < NV; ++v) {
      wv[v] = vload(w + v * VL);
      __asm__("" : "+v"(wv[v]));
    }
    const int ci = ix[j];
    _Pragma("GCC unroll 32")
    for (int p = 0; p < PB; ++p) {
      const vf a = vsplat(src[p][ci]);
      _Pragma("GCC unroll 32")
      for (int v = 0; v < NV; ++v) acc[p][v] = vfma(wv[v], a, acc[p][v]);
    }
  }
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) {
    float* y = out[p] + ch0;
    const float* r = res ? res[p] + ch0 : nullptr;
    _Pragma("GCC unroll 32")
    for (int v = 0; v < NV - 1; ++v) {
      vf t = activate(acc[p][v], ACT);
      if (r) t += vload(r + v * VL);
      vstore(y + v * VL, t);
    }
    vf t = activate(acc[p][NV - 1], ACT);
    if (r) t += vload_n(r + (NV - 1) * VL, nlast);
    vstore_n(y + (NV - 1) * VL, t, nlast);
  }
}

template <int PB, int NV, int ACT>
void micro_rest(int r, const float* const* in, float* const* out, const float* const* res,
                const int* ix, const float* w, int k, int opad, const float* bias, int ch0,
                int nlast) {
  if (r == PB) {
    micro<PB, NV, ACT>(in, out, res, ix, w, k, opad, bias, ch0, nlast);
  } else if constexpr (PB > 1) {
    micro_rest<PB - 1, NV, ACT>(r, in, out, res, ix, w, k, opad, bias, ch0, nlast);
  }
}

template <int NV, int ACT>
void run_chunk(const Factor& f, int g, int c0, const float* const* in, float* const* out,
               const float* const* res, int P) {
  constexpr int PB = pb_for(NV);
  const int* ix = f.idx + (size_t)g * f.k;
  int ld;
  const float* w = branch_weights(f, g, c0, ld);
  const int ch0 = g * f.o + c0, nlast = std::min(VL, f.o - c0 - (NV - 1) * VL);
  int p = 0;
  for (; p + PB <= P; p += PB)
    micro<PB, NV, ACT>(in + p, out + p, res ? res + p : nullptr, ix, w, f.k, ld, f.bias,
                       ch0, nlast);
  if (p < P)
    micro_rest<PB - 1, NV, ACT>(P - p, in + p, out + p, res ? res + p : nullptr, ix, w, f.k,
                                ld, f.bias, ch0, nlast);
}

#if defined(__AVX512F__)
// Branches of at most 8 outputs (IGCV2's branches of 8 channels) on half vectors: on
// Zen 4 two 256-bit multiply-adds issue per cycle against one 512-bit one, so 8 outputs
// take the time 16 take on full vectors, instead of doubling the work by joining two
// branches block-diagonally (zeros included). PB pixels x 8 outputs, as micro<PB, 1>.
typedef float vh __attribute__((vector_size(8 * sizeof(float))));
inline vh hload_n(const float* p, int n) {
  if (n >= 8) return (vh)_mm256_loadu_ps(p);
  return (vh)_mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1), p);
}
inline void hstore_n(float* p, vh v, int n) {  // masked stores only for a tail
  if (n >= 8) _mm256_storeu_ps(p, (__m256)v);
  else _mm256_mask_storeu_ps(p, (__mmask8)((1u << n) - 1), (__m256)v);
}
inline vh hactivate(vh v, int act) {
  if (act == 0) return v;
  v = (vh)_mm256_max_ps((__m256)v, _mm256_setzero_ps());
  if (act == 2) v = (vh)_mm256_min_ps((__m256)v, _mm256_set1_ps(6.f));
  return v;
}
constexpr int kHalfPB = 12;

template <int PB, int ACT>
void micro_half(const float* const* in, float* const* out, const float* const* res,
                const int* ix, const float* w, int k, int opad, const float* bias, int ch0,
                int n) {
  const vh b = bias ? hload_n(bias + ch0, n) : vh{};
  vh acc[PB];
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) acc[p] = b;
  const float* src[PB];
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) src[p] = in[p];
  for (int j = 0; j < k; ++j, w += opad) {
    vh wv;
    std::memcpy(&wv, w, sizeof wv);  // the packed row has 16 floats: 8 are always there
    __asm__("" : "+v"(wv));
    const int ci = ix[j];
    _Pragma("GCC unroll 32")
    for (int p = 0; p < PB; ++p)  // one rounding (vfma)
      acc[p] = (vh)_mm256_fmadd_ps((__m256)wv, _mm256_set1_ps(src[p][ci]), (__m256)acc[p]);
  }
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) {
    vh t = hactivate(acc[p], ACT);
    if (res) t += hload_n(res[p] + ch0, n);
    hstore_n(out[p] + ch0, t, n);
  }
}

template <int PB, int ACT>
void micro_half_rest(int r, const float* const* in, float* const* out, const float* const* res,
                     const int* ix, const float* w, int k, int opad, const float* bias, int ch0,
                     int n) {
  if (r == PB) {
    micro_half<PB, ACT>(in, out, res, ix, w, k, opad, bias, ch0, n);
  } else if constexpr (PB > 1) {
    micro_half_rest<PB - 1, ACT>(r, in, out, res, ix, w, k, opad, bias, ch0, n);
  }
}

template <int ACT>
void run_factor_half(const Factor& f, const float* const* in, float* const* out,
                     const float* const* res, int P) {
  for (int g = 0; g < f.G; ++g) {
    const int* ix = f.idx + (size_t)g * f.k;
    const float* w = f.w + (size_t)g * f.k * f.opad;
    const int ch0 = g * f.o;
    int p = 0;
    for (; p + kHalfPB <= P; p += kHalfPB)
      micro_half<kHalfPB, ACT>(in + p, out + p, res ? res + p : nullptr, ix, w, f.k, f.opad,
                               f.bias, ch0, f.o);
    if (p < P)
      micro_half_rest<kHalfPB - 1, ACT>(P - p, in + p, out + p, res ? res + p : nullptr, ix,
                                        w, f.k, f.opad, f.bias, ch0, f.o);
  }
}
#endif

template <int ACT>
void run_factor_act(const Factor& f, const float* const* in, float* const* out,
                    const float* const* res, int P) {
#if defined(__AVX512F__)
  if (f.o <= 8 && g_half) {
    run_factor_half<ACT>(f, in, out, res, P);
    return;
  }
#endif
  for (int g = 0; g < f.G; ++g) {
    for (int c0 = 0; c0 < f.o;) {
      const int vecs = (f.o - c0 + VL - 1) / VL;
      // paneled: passes of 4 vectors, within a panel (c0 a multiple of 4 * VL)
      const int nv = f.opad > kPanelFrom ? std::min(vecs, 4)
                                         : vecs <= 6 ? vecs : vecs >= 8 ? 4 : (vecs + 1) / 2;
      switch (nv) {
        case 1: run_chunk<1, ACT>(f, g, c0, in, out, res, P); break;
        case 2: run_chunk<2, ACT>(f, g, c0, in, out, res, P); break;
        case 3: run_chunk<3, ACT>(f, g, c0, in, out, res, P); break;
        case 4: run_chunk<4, ACT>(f, g, c0, in, out, res, P); break;
        case 5: run_chunk<5, ACT>(f, g, c0, in, out, res, P); break;
        default: run_chunk<6, ACT>(f, g, c0, in, out, res, P); break;
      }
      c0 += nv * VL;
    }
  }
}

void run_factor_micro(const Factor& f, const float* const* in, float* const* out,
                      const float* const* res, int P) {
  if (f.act == 0) run_factor_act<0>(f, in, out, res, P);
  else if (f.act == 1) run_factor_act<1>(f, in, out, res, P);
  else run_factor_act<2>(f, in, out, res, P);
}

void run_factor(const Factor& f, const float* const* in, float* const* out,
                const float* const* res, int P) {
  if (g_variant == -1) run_factor_aten(f, in, out, res, P);
  else run_factor_micro(f, in, out, res, P);
}

struct Scratch {
  std::vector<float> buf[2];
  std::vector<float*> ptr[2];
  int ld = 0;
  void init(int pixels, int width) {
    ld = width = padded_stride(width);
    for (int i = 0; i < 2; ++i) {
      buf[i].resize((size_t)pixels * width + VL);  // every lane read is written first
      if (g_skip & 32) std::fill(buf[i].begin(), buf[i].end(), 0.f);  // as before
      ptr[i].resize(pixels);
      for (int p = 0; p < pixels; ++p) ptr[i][p] = buf[i].data() + (size_t)p * width;
    }
  }
};

// Whether a trailing permutation is the interleave of 8 runs of out/8 channels (IGCV2's
// shuffle after a factor of 8 branches): out[r*8 + g] = a[g*o + r], o = out/8 a multiple
// of 16 (then it runs as register transposes, interleave8_rows, not as gathers).
bool is_interleave8(const int* tail, int out) {
  if (VL != 16 || out % 128) return false;
  const int o = out / 8;
  for (int c = 0; c < out; ++c)
    if (tail[c] != (c % 8) * o + c / 8) return false;
  return true;
}

#if defined(__AVX512F__)
// y[r*8 + g] = a[g*o + r] (+ res) for one pixel: per 16 values of r, the 8 runs' vectors
// S_g are transposed in registers (8x16 -> 16x8: unpack ps, unpack pd, two 128-bit
// shuffles; 32 shuffles per 128 floats) instead of 8 AVX-512 gathers, which are slow on
// Zen 4 (about a tenth of IGCV2-1.0's early blocks, benchmarks/kernel_profile.py).
inline void interleave8_pixel(const float* a, float* y, const float* res, int o) {
  for (int r0 = 0; r0 < o; r0 += 16) {
    __m512 S[8], T[8], U[8];
    for (int g = 0; g < 8; ++g) S[g] = _mm512_loadu_ps(a + (size_t)g * o + r0);
    for (int i = 0; i < 4; ++i) {  // per 128-bit lane L: T = (S_2i, S_2i+1) at 4L+{0,1} / {2,3}
      T[2 * i] = _mm512_unpacklo_ps(S[2 * i], S[2 * i + 1]);
      T[2 * i + 1] = _mm512_unpackhi_ps(S[2 * i], S[2 * i + 1]);
    }
    // U[4a + q], lane L: S_{4a..4a+3} at element 4L + q
    for (int a4 = 0; a4 < 2; ++a4) {
      const __m512d t0 = _mm512_castps_pd(T[4 * a4]), t1 = _mm512_castps_pd(T[4 * a4 + 1]);
      const __m512d t2 = _mm512_castps_pd(T[4 * a4 + 2]), t3 = _mm512_castps_pd(T[4 * a4 + 3]);
      U[4 * a4 + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
      U[4 * a4 + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
      U[4 * a4 + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
      U[4 * a4 + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    float* out = y + (size_t)r0 * 8;
    const float* rr = res ? res + (size_t)r0 * 8 : nullptr;
    for (int q0 = 0; q0 < 4; q0 += 2) {
      // output vector t = 2L + q0/2 holds the 128-bit lanes L of U[q0], U[4+q0],
      // U[q0+1], U[4+q0+1]: elements 2t (branches 0-7) and 2t+1 (branches 0-7)
      const __m512 A = U[q0], B = U[4 + q0], C = U[q0 + 1], D = U[4 + q0 + 1];
      const __m512 P0 = _mm512_shuffle_f32x4(A, B, _MM_SHUFFLE(2, 0, 2, 0));
      const __m512 P1 = _mm512_shuffle_f32x4(A, B, _MM_SHUFFLE(3, 1, 3, 1));
      const __m512 Q0 = _mm512_shuffle_f32x4(C, D, _MM_SHUFFLE(2, 0, 2, 0));
      const __m512 Q1 = _mm512_shuffle_f32x4(C, D, _MM_SHUFFLE(3, 1, 3, 1));
      __m512 O[4] = {_mm512_shuffle_f32x4(P0, Q0, _MM_SHUFFLE(2, 0, 2, 0)),
                     _mm512_shuffle_f32x4(P1, Q1, _MM_SHUFFLE(2, 0, 2, 0)),
                     _mm512_shuffle_f32x4(P0, Q0, _MM_SHUFFLE(3, 1, 3, 1)),
                     _mm512_shuffle_f32x4(P1, Q1, _MM_SHUFFLE(3, 1, 3, 1))};
      for (int L = 0; L < 4; ++L) {
        const size_t at = (size_t)(2 * L + q0 / 2) * 16;
        if (rr) O[L] = _mm512_add_ps(O[L], _mm512_loadu_ps(rr + at));
        _mm512_storeu_ps(out + at, O[L]);
      }
    }
  }
}
#endif

// out[p] = segment(in[p]) (+ res[p]) for P pixels.
void run_segment(const Segment& s, const float* const* in, float* const* out,
                 const float* const* res, int P, Scratch& sc) {
  const float* const* cur = in;
  const int n = (int)s.factors.size();
  for (int i = 0; i < n; ++i) {
    const bool last = i == n - 1;
    float* const* dst = (last && !s.tail) ? out : sc.ptr[i % 2].data();
    run_factor(s.factors[i], cur, dst, last && !s.tail ? res : nullptr, P);
    cur = dst;
  }
  if (s.tail && (g_skip & 8)) {  // profiling: a copy in place of the permutation
    for (int p = 0; p < P; ++p) std::memcpy(out[p], cur[p], (size_t)s.out * sizeof(float));
    return;
  }
  if (s.tail) {
#if defined(__AVX512F__)
    if (s.interleave8 && g_variant != -2) {
      for (int p = 0; p < P; ++p) interleave8_pixel(cur[p], out[p], res ? res[p] : nullptr,
                                                    s.out / 8);
      return;
    }
    for (int p = 0; p < P; ++p) {
      const float* a = cur[p];
      float* y = out[p];
      for (int c = 0; c < s.out; c += VL) {
        const int n = std::min(VL, s.out - c);
        const __mmask16 m = (__mmask16)(n >= VL ? 0xffffu : (1u << n) - 1);
        const __m512i ix = _mm512_maskz_loadu_epi32(m, s.tail + c);
        __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, ix, a, 4);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res[p] + c));
        _mm512_mask_storeu_ps(y + c, m, v);
      }
    }
    return;
#endif
    for (int p = 0; p < P; ++p) {
      const float* a = cur[p];
      float* y = out[p];
      if (res) {
        const float* r = res[p];
        for (int c = 0; c < s.out; ++c) y[c] = a[s.tail[c]] + r[c];
      } else {
        for (int c = 0; c < s.out; ++c) y[c] = a[s.tail[c]];
      }
    }
  }
}

struct Spatial {
  int C, Cpad, K, s, pad, kg, D, M, act;
  const float* w;     // (K*K, D, Cpad)
  const float* bias;  // (Cpad)
};

// The depthwise 3x3 pass (kg == 1, K == 3; every depthwise layer of the zoo): per output
// row, PX output pixels at a time, every vector of VL channels of them in turn (its 9 tap
// weights and bias loaded from L1 for the block), so the input is read in memory order
// (one channel vector at a time down the tile's rows, its weights held in registers,
// read each pixel's lines a pixel stride of 1-4 KiB apart: whole networks at batch 1,
// one thread, 1.01-1.03x as long). Each input vector is loaded once per block row and
// feeds every accumulator whose window covers it (up to 3 at stride 1, 2 at stride 2):
// per PX pixels 3 * ((PX-1)*S + 3) loads and 10 weight loads for 9 * PX FMAs (the
// generic loop below: 9 * PX loads and 9 weight reloads per block of 4). Stride,
// pixels and activation are template parameters, so every loop unrolls and the window
// test is resolved at compile time. Channels are padded to whole vectors (zero weights,
// zero inputs), so there is no channel tail; the pixel tail runs the same code with
// fewer pixels.
constexpr int DW_PX = VL == 16 ? 8 : 4;

// R output rows (1 or 2) x PX pixels of one channel vector: input rows a[i] + off, i < (R-1)
// * S + 3, pixels SA floats apart; outputs at out (pixels ldB apart, rows ldR). Each input
// vector is loaded once and feeds every accumulator of both rows whose window covers it,
// the taps of every accumulator in the same order (ky, then kx) whatever R.
template <int S, int PX, int ACT, bool PIN, int R>
inline void dw3_block(const float* const* a, size_t off, int SA, const vf* w, vf b,
                      float* out, int ldB, size_t ldR) {
  vf acc[R][PX];
  _Pragma("GCC unroll 2")
  for (int rr = 0; rr < R; ++rr) {
    _Pragma("GCC unroll 32")
    for (int q = 0; q < PX; ++q) acc[rr][q] = b;
  }
  _Pragma("GCC unroll 5")
  for (int i = 0; i < (R - 1) * S + 3; ++i) {
    const float* row = a[i] + off;
    _Pragma("GCC unroll 64")
    for (int c = 0; c < (PX - 1) * S + 3; ++c) {
      vf x = vload(row + (size_t)c * SA);
      if (PIN) __asm__("" : "+v"(x));  // one load feeds every accumulator
      _Pragma("GCC unroll 2")
      for (int rr = 0; rr < R; ++rr) {
        const int ky = i - rr * S;
        if (ky < 0 || ky >= 3) continue;
        _Pragma("GCC unroll 32")
        for (int q = 0; q < PX; ++q) {
          const int kx = c - q * S;
          if (kx >= 0 && kx < 3) acc[rr][q] = vfma(x, w[ky * 3 + kx], acc[rr][q]);
        }
      }
    }
  }
  _Pragma("GCC unroll 2")
  for (int rr = 0; rr < R; ++rr) {
    _Pragma("GCC unroll 32")
    for (int q = 0; q < PX; ++q)
      vstore(out + rr * ldR + (size_t)q * ldB, activate(acc[rr][q], ACT));
  }
}

template <int S, int PX, int ACT, bool PIN, int R>
inline void dw3_tail(int n, const float* const* a, size_t off, int SA, const vf* w, vf b,
                     float* out, int ldB, size_t ldR) {
  if (n == PX) {
    dw3_block<S, PX, ACT, PIN, R>(a, off, SA, w, b, out, ldB, ldR);
  } else if constexpr (PX > 1) {
    dw3_tail<S, PX - 1, ACT, PIN, R>(n, a, off, SA, w, b, out, ldB, ldR);
  }
}

// Two output rows per register block where the registers allow it (AVX-512's 32: 16
// accumulators, 9 weights, the bias and the input): an input row shared by both is loaded
// once (at stride 1, 4 rows for 2 outputs rows instead of 6); set_dw_variant(3): one row.
constexpr bool kTwoRows = VL == 16;

template <int S, int ACT, bool PIN, int R>
void dw3_row_block(const Spatial& sp, const float* const* a, int SA, int Wo, float* out,
                   int ldB, size_t ldR, vf* w, vf& b) {
  const int Cp = sp.Cpad;
  for (int ox = 0; ox < Wo; ox += DW_PX) {
    const int n = std::min(DW_PX, Wo - ox);
    const size_t at = (size_t)ox * S * SA;
    for (int c0 = 0; c0 < Cp; c0 += VL) {  // every vector of channels, in memory order
      _Pragma("GCC unroll 9")
      for (int t = 0; t < 9; ++t) w[t] = vload(sp.w + (size_t)t * Cp + c0);
      b = vload(sp.bias + c0);
      float* o = out + (size_t)ox * ldB + c0;
      if (n == DW_PX)
        dw3_block<S, DW_PX, ACT, PIN, R>(a, at + c0, SA, w, b, o, ldB, ldR);
      else
        dw3_tail<S, DW_PX - 1, ACT, PIN, R>(n, a, at + c0, SA, w, b, o, ldB, ldR);
    }
  }
}

template <int S, int ACT, bool PIN>
void dw3_rows(const Spatial& sp, const float* const* A, int SA, int rows, int Wo, float* B,
              int ldB, size_t ldR) {
  vf w[9], b;
  int r = 0;
  if (kTwoRows && g_dw_variant != 3)
    for (; r + 1 < rows; r += 2)
      dw3_row_block<S, ACT, PIN, 2>(sp, A + r * S, SA, Wo, B + r * ldR, ldB, ldR, w, b);
  for (; r < rows; ++r)
    dw3_row_block<S, ACT, PIN, 1>(sp, A + r * S, SA, Wo, B + r * ldR, ldB, ldR, w, b);
}

template <int S>
void dw3_act(const Spatial& sp, const float* const* A, int SA, int rows, int Wo, float* B,
             int ldB, size_t ldR, bool pin) {
  if (!pin || g_dw_variant == 2) {
    if (sp.act == 0) dw3_rows<S, 0, false>(sp, A, SA, rows, Wo, B, ldB, ldR);
    else if (sp.act == 1) dw3_rows<S, 1, false>(sp, A, SA, rows, Wo, B, ldB, ldR);
    else dw3_rows<S, 2, false>(sp, A, SA, rows, Wo, B, ldB, ldR);
    return;
  }
  if (sp.act == 0) dw3_rows<S, 0, true>(sp, A, SA, rows, Wo, B, ldB, ldR);
  else if (sp.act == 1) dw3_rows<S, 1, true>(sp, A, SA, rows, Wo, B, ldB, ldR);
  else dw3_rows<S, 2, true>(sp, A, SA, rows, Wo, B, ldB, ldR);
}

// B[r][ox] = act(bias + sum_taps sum_d A[r*s+ky][ox*s+kx][c+d] * w[tap][d][c]); A[i]: the
// tile's input row i (from the first pixel the first output column reads, padding
// included, pixels SA floats apart); B's pixels ldB floats apart, its rows ldR. `pin`:
// the rows are in cache (the ring), and the 3x3 pass loads each input vector once into a
// register for all the accumulators it feeds (left to itself the compiler folds the load
// into every multiply-add, reloading it 2-3 times: IGCV3-1.0 0.945x, MobileNetV2 0.974x
// pinned); rows read in place from the block's input (spatial_direct) keep the folded
// loads (pinned there: IGCV2-1.0 1.016x, MobileNetV1 1.005x), but rows read in place
// from a ring of a chain (fused_chain: in cache) are pinned (IGCV2-1.0 0.973x,
// MobileNetV1-1.0 0.996x).
void run_spatial(const Spatial& sp, const float* const* A, int SA, int rows, int Wo,
                 float* B, int ldB, size_t ldR, bool pin) {
  if (g_dw_variant != 1 && sp.K == 3 && sp.kg == 1 && (sp.s == 1 || sp.s == 2)) {
    if (sp.s == 1) dw3_act<1>(sp, A, SA, rows, Wo, B, ldB, ldR, pin);
    else dw3_act<2>(sp, A, SA, rows, Wo, B, ldB, ldR, pin);
    return;
  }
  const int K = sp.K, s = sp.s, D = sp.D, Cp = sp.Cpad, off = sp.M - (sp.kg - 1);
  const size_t step = (size_t)s * SA;
  for (int r = 0; r < rows; ++r) {
    for (int c0 = 0; c0 < Cp; c0 += VL) {
      const vf b = vload(sp.bias + c0);
      int ox = 0;
      for (; ox + 4 <= Wo; ox += 4) {
        vf acc[4] = {b, b, b, b};
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            const float* a = A[r * s + ky] + (size_t)(ox * s + kx) * SA + off + c0;
            const float* wt = sp.w + (size_t)(ky * K + kx) * D * Cp + c0;
            for (int d = 0; d < D; ++d) {
              const vf wv = vload(wt + (size_t)d * Cp);
              for (int q = 0; q < 4; ++q) acc[q] = vfma(vload(a + q * step + d), wv, acc[q]);
            }
          }
        for (int q = 0; q < 4; ++q)
          vstore(B + r * ldR + (size_t)(ox + q) * ldB + c0, activate(acc[q], sp.act));
      }
      for (; ox < Wo; ++ox) {
        vf acc = b;
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            const float* a = A[r * s + ky] + (size_t)(ox * s + kx) * SA + off + c0;
            const float* wt = sp.w + (size_t)(ky * K + kx) * D * Cp + c0;
            for (int d = 0; d < D; ++d) acc = vfma(vload(a + d), vload(wt + (size_t)d * Cp), acc);
          }
        vstore(B + r * ldR + (size_t)ox * ldB + c0, activate(acc, sp.act));
      }
    }
  }
}

// Rows of an NHWC map: row r at base + r * row (or, in a ring of `ring` row slots, slot
// r mod ring), pixels `pixel` floats apart. A block's input and output are the image's
// rows; inside a chain of blocks (fused_chain) they are rings of a few rows.
struct Rows {
  float* base;
  int64_t row, pixel;
  int ring;  // 0: not a ring
  float* at(int r) const { return base + (int64_t)(ring ? r % ring : r) * row; }
};

// The spatial pass of a tile straight from the block's input rows, for a block without a
// pre segment whose spatial convolution is depthwise over whole vectors of channels
// (IGCV2's and MobileNetV1's blocks), without the ring copy of every input row (whole
// networks at batch 1: MobileNetV1-1.0 0.96x, IGCV2-1.0 0.999x). The output columns whose
// windows lie inside the image, [c0, c1), read the rows in place (rows outside the image:
// `zero`, at least W * in.pixel floats of zeros); each border column reads its taps
// inside the image. Output rows [oh0, oh0 + rows) of the map `in` (H x W pixels of
// sp.Cpad floats) into B (pixels ldB floats apart, rows Wo * ldB); `pin`: see
// run_spatial.
void spatial_direct(const Spatial& sp, const Rows& in, int H, int W, int oh0, int rows,
                    int Wo, const float* zero, const float** rowp, float* B, int ldB,
                    bool pin) {
  const int K = sp.K, S = sp.s, pad = sp.pad, ilo = oh0 * S - pad, RAt = (rows - 1) * S + K;
  const int Cp = sp.Cpad;
  const int64_t px = in.pixel;
  const size_t ldR = (size_t)Wo * ldB;
  const int c1 = std::min(Wo, W - K + pad >= 0 ? (W - K + pad) / S + 1 : 0);
  const int c0 = std::min((pad + S - 1) / S, c1);
  if (c0 < c1) {
    for (int i = 0; i < RAt; ++i) {
      const int ih = ilo + i;
      rowp[i] = ih >= 0 && ih < H ? in.at(ih) + ((int64_t)c0 * S - pad) * px : zero;
    }
    run_spatial(sp, rowp, (int)px, rows, c1 - c0, B + (size_t)c0 * ldB, ldB, ldR, pin);
  }
  // A border column straight from the input rows, the taps outside the image left out
  // (they would add zeros; the same order of taps as the passes above). A zero-padded
  // copy of each border window took most of the pass at 14x14 and 7x7 (1024-2048
  // channels: IGCV2-1.0's late blocks).
  for (int ox = 0; ox < Wo; ++ox) {
    if (ox == c0 && c0 < c1) ox = c1;  // the interior is done
    if (ox >= Wo) break;
    for (int r = 0; r < rows; ++r) {
      float* out = B + r * ldR + (size_t)ox * ldB;
      for (int c = 0; c < Cp; c += VL) {
        vf acc = vload(sp.bias + c);
        for (int ky = 0; ky < K; ++ky) {
          const int ih = ilo + r * S + ky;
          if (ih < 0 || ih >= H) continue;
          const float* row = in.at(ih) + c;
          for (int kx = 0; kx < K; ++kx) {
            const int iw = ox * S - pad + kx;
            if (iw >= 0 && iw < W)
              acc = vfma(vload(row + iw * px), vload(sp.w + (size_t)(ky * K + kx) * Cp + c), acc);
          }
        }
        vstore(out + c, activate(acc, sp.act));
      }
    }
  }
}

// Zeroes what the passes read but nothing writes, in the per-thread input ring A (kept
// between calls, so it holds another block's rows): the zero row (and the slack after
// it), each ring row's padding pixels, and per pixel the lanes outside its Cs channels
// (the diagonals' margins and the channel padding). The data lanes of a row are written
// (by the pre segment or a copy) before the spatial pass reads them, so they are left;
// the whole buffer was zeroed on every call before (2-4 % of a block's time,
// benchmarks/kernel_profile.py).
void zero_margins(float* A, int RA, size_t rowsz, int W, int pad, int SA, int M, int Cs) {
  std::memset(A + (size_t)RA * rowsz, 0, (rowsz + VL) * sizeof(float));
  const int lo = M, hi = M + Cs;  // the data lanes of a pixel
  for (int r = 0; r < RA; ++r) {
    float* row = A + (size_t)r * rowsz;
    std::memset(row, 0, (size_t)pad * SA * sizeof(float));
    std::memset(row + (size_t)(W + pad) * SA, 0, (size_t)pad * SA * sizeof(float));
    if (lo == 0 && hi == SA) continue;
    for (int iw = 0; iw < W; ++iw) {
      float* px = row + (size_t)(iw + pad) * SA;
      std::fill(px, px + lo, 0.f);
      std::fill(px + hi, px + SA, 0.f);
    }
  }
}

int64_t cfg_at(const std::vector<int64_t>& cfg, size_t& i) {
  TORCH_CHECK(i < cfg.size(), "igc fused_block: config too short");
  return cfg[i++];
}

Segment read_segment(int n, bool has_tail, const std::vector<int64_t>& cfg, size_t& ci,
                     const std::vector<at::Tensor>& params, size_t& pi) {
  Segment s;
  for (int f = 0; f < n; ++f) {
    Factor fa;
    fa.G = (int)cfg_at(cfg, ci);
    fa.k = (int)cfg_at(cfg, ci);
    fa.o = (int)cfg_at(cfg, ci);
    fa.act = (int)cfg_at(cfg, ci);
    fa.opad = round_up(fa.o, 16);  // the packer pads to 16 (a multiple of VL)
    TORCH_CHECK(pi + 3 <= params.size(), "igc fused_block: too few parameters");
    const at::Tensor& w = params[pi++];
    const at::Tensor& idx = params[pi++];
    const at::Tensor& b = params[pi++];
    TORCH_CHECK(w.numel() == (int64_t)fa.G * fa.k * fa.opad && idx.numel() == (int64_t)fa.G * fa.k,
                "igc fused_block: factor shapes do not match the config");
    fa.w = w.data_ptr<float>();
    fa.idx = idx.data_ptr<int>();
    fa.bias = b.numel() ? b.data_ptr<float>() : nullptr;
    s.factors.push_back(fa);
    s.out = fa.G * fa.o;
    s.width = std::max(s.width, round_up(fa.G * fa.o, VL));
  }
  if (has_tail) {
    TORCH_CHECK(pi < params.size(), "igc fused_block: missing permutation");
    s.tail = params[pi++].data_ptr<int>();
    s.interleave8 = is_interleave8(s.tail, s.out);
  }
  return s;
}

}  // namespace

// A pool of fused_block's output buffers (issue 17). A fresh output the size of
// IGCV2-1.0's 112x112 maps (3.2-6.4 MB) is served by glibc with mmap and given back to the
// OS when it is freed, so every forward paid the page faults of touching it again. The
// pool keeps the storages of recent outputs; an output of the same byte count reuses one
// that NOBODY ELSE references, as a new tensor (its own TensorImpl: nothing of an old
// output's Python object, flags or autograd state carries over) over that storage. A
// storage is referenced while any tensor of it lives: the old output, a view of it (the
// view keeps the storage alive, not the TensorImpl), a numpy array of it (it holds the
// tensor). Such a storage is never reused. Its use_count is 1 then (the pool's), or 2 when
// a Python object was made of the storage (x.untyped_storage()): under PyObject
// preservation that object holds a reference and the storage keeps it alive; it is
// unreferenced when only the storage holds it (c10/util/intrusive_ptr.h).
// Policy: least recently used first out, at most kPoolEntries storages and kPoolBytes
// bytes in all. A new output is pooled, then the oldest entries are dropped until both
// bounds hold (dropping a storage still in use only drops the pool's reference: its
// holder frees it later); an output of more than kPoolBytes is never pooled. One mutex
// guards the pool: torch.compile may call the op without the GIL.
namespace {

constexpr size_t kPoolEntries = 32;
constexpr size_t kPoolBytes = size_t(64) << 20;

struct PoolEntry {
  c10::Storage storage;
  size_t nbytes;
};

struct OutputPool {
  std::mutex mu;
  std::vector<PoolEntry> entries;  // least recently used first
  size_t bytes = 0;
  int64_t hits = 0, misses = 0;
  bool enabled = true;
};

OutputPool& output_pool() {  // never destroyed: no storage is freed in static destructors
  static OutputPool* pool = new OutputPool;
  return *pool;
}

bool unreferenced(const c10::Storage& s) {
  const size_t uses = s.use_count();
  if (uses == 1) return true;
  // Read the wrapper's count directly (no interpreter call, so no GIL is asked for while
  // the pool's mutex is held): 1 is the reference the storage itself holds.
  PyObject* wrapper = s.unsafeGetStorageImpl()->pyobj_slot()->load_pyobj();
  return uses == 2 && wrapper != nullptr && Py_REFCNT(wrapper) == 1;
}

// An uninitialised tensor of `sizes` in channels-last layout with `options` (as
// at::empty gives it), over a pooled storage where one is free.
at::Tensor pooled_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const auto layout = options.memory_format(at::MemoryFormat::ChannelsLast);
  OutputPool& pool = output_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  if (!pool.enabled) return at::empty(sizes, layout);
  const size_t need = (size_t)c10::multiply_integers(sizes) * options.dtype().itemsize();
  for (size_t i = 0; i < pool.entries.size(); ++i) {
    const PoolEntry& r = pool.entries[i];
    if (r.nbytes != need || r.storage.nbytes() != need || r.storage.device() != options.device() ||
        !unreferenced(r.storage))  // before any copy of it
      continue;
    const PoolEntry e = r;
    pool.entries.erase(pool.entries.begin() + i);
    pool.entries.push_back(e);  // most recently used last
    ++pool.hits;
    return at::empty({0}, options).set_(e.storage, 0, sizes,
                                        c10::get_channels_last_strides_2d(sizes));
  }
  ++pool.misses;
  at::Tensor y = at::empty(sizes, layout);
  if (need == 0 || need > kPoolBytes) return y;
  pool.entries.push_back({y.storage(), need});
  pool.bytes += need;
  while (pool.entries.size() > kPoolEntries || pool.bytes > kPoolBytes) {
    pool.bytes -= pool.entries.front().nbytes;
    pool.entries.erase(pool.entries.begin());
  }
  return y;
}

}  // namespace

namespace {

// Whether x (N, C, H, W) can be read in place as NHWC pixels whose channels are
// contiguous: channels-last, or with more floats between pixels than channels (a padded
// layout: another fused block's output, below), rows and images not overlapping.
bool pixels_in_place(const at::Tensor& x) {
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t sp = x.stride(3), sr = x.stride(2), si = x.stride(0);
  return (C <= 1 || x.stride(1) == 1) && sp >= C && sr >= W * sp && si >= H * sr;
}

// One block as the kernel runs it: its config and parameters (see fused_block) read and
// checked for an input of H x W pixels, and the sizes of its tiles and buffers.
struct Block {
  Spatial sp;
  Segment pre, post;
  std::vector<at::Tensor> params;  // contiguous: the pointers above point into them
  int Cin, Cs, Cout, K, S, pad, kg, tile_rows, n_pre, out_pixel;
  bool residual, direct;
  int H, W, Ho, Wo, TR, SA, ldB, RA, Ppost, Ppre, wpre, wpost;
  size_t rowsz, zero_len;
};

Block read_block(const std::vector<at::Tensor>& params_in, const std::vector<int64_t>& cfg,
                 int Cin_x, int H, int W, int64_t in_pixel) {
  Block b;
  for (const auto& p : params_in) b.params.push_back(p.contiguous());
  const std::vector<at::Tensor>& params = b.params;
  size_t ci = 0, pi = 0;
  b.Cin = (int)cfg_at(cfg, ci), b.Cs = (int)cfg_at(cfg, ci), b.Cout = (int)cfg_at(cfg, ci);
  b.K = (int)cfg_at(cfg, ci), b.S = (int)cfg_at(cfg, ci), b.pad = (int)cfg_at(cfg, ci);
  b.kg = (int)cfg_at(cfg, ci);
  const int dw_act = (int)cfg_at(cfg, ci);
  b.residual = cfg_at(cfg, ci) != 0;
  b.tile_rows = std::max<int>(1, (int)cfg_at(cfg, ci));
  b.n_pre = (int)cfg_at(cfg, ci);
  const int pre_tail = (int)cfg_at(cfg, ci);
  const int n_post = (int)cfg_at(cfg, ci), post_tail = (int)cfg_at(cfg, ci);
  const int Cin = b.Cin, Cs = b.Cs, Cout = b.Cout, K = b.K, S = b.S, pad = b.pad, kg = b.kg;
  b.out_pixel = std::max<int>(Cout, (int)cfg_at(cfg, ci));
  TORCH_CHECK(Cin_x == Cin, "igc fused_block: expected ", Cin, " input channels, got ", Cin_x);
  TORCH_CHECK(n_post >= 1 && K >= 1 && S >= 1 && pad >= 0 && kg >= 1 && Cs >= 1 &&
                  b.n_pre >= 0 && b.out_pixel <= Cout + 64,
              "igc fused_block: bad config");
  TORCH_CHECK(params.size() >= 2, "igc fused_block: too few parameters");
  Spatial& sp = b.sp;
  // padded to 16 floats as the packer pads them, whatever VL (an AVX2 build padded to 8 and
  // refused every block whose width is not a multiple of 16)
  sp.C = Cs; sp.Cpad = round_up(Cs, 16); sp.K = K; sp.s = S; sp.pad = pad; sp.kg = kg;
  sp.D = 2 * kg - 1; sp.M = kg - 1; sp.act = dw_act;
  TORCH_CHECK(params[0].numel() == (int64_t)K * K * sp.D * sp.Cpad &&
                  params[1].numel() == sp.Cpad, "igc fused_block: spatial shapes do not match");
  sp.w = params[0].data_ptr<float>();
  sp.bias = params[1].data_ptr<float>();
  pi = 2;
  b.pre = read_segment(b.n_pre, pre_tail, cfg, ci, params, pi);
  b.post = read_segment(n_post, post_tail, cfg, ci, params, pi);
  TORCH_CHECK(b.n_pre == 0 ? Cs == Cin : b.pre.out == Cs, "igc fused_block: widths do not chain");
  TORCH_CHECK(b.post.out == Cout, "igc fused_block: output width does not match");
  b.H = H, b.W = W;
  b.Ho = (H + 2 * pad - K) / S + 1, b.Wo = (W + 2 * pad - K) / S + 1;
  TORCH_CHECK(H + 2 * pad >= K && W + 2 * pad >= K,
              "igc fused_block: input smaller than the kernel");
  TORCH_CHECK(!b.residual || (Cin == Cout && b.Ho == H && b.Wo == W),
              "igc fused_block: a residual needs equal input and output shapes");
  b.TR = std::min(b.tile_rows, b.Ho);
  const int Wp = W + 2 * pad;
  b.SA = padded_stride(sp.M + sp.Cpad + sp.M);
  b.ldB = padded_stride(sp.Cpad);
  b.RA = (b.TR - 1) * S + K;  // input rows a tile needs
  b.rowsz = (size_t)Wp * b.SA;
  b.Ppost = b.TR * b.Wo, b.Ppre = b.RA * W;
  b.wpre = std::max(b.pre.width, VL), b.wpost = std::max(b.post.width, VL);
  // no pre segment, depthwise, whole vectors of channels: the input rows are read in place
  b.direct = g_direct && b.n_pre == 0 && kg == 1 && Cin == sp.Cpad;
  // the zero row: a ring row, or an input row read in place
  b.zero_len = std::max<size_t>(b.rowsz, (size_t)W * in_pixel) + VL;
  return b;
}

// A thread's buffers and state for one block. The buffers are kept between calls
// (thread_local owners; zeroed where needed, their memory reused): fresh vectors of this
// size are mapped and faulted in by the OS on every call, which cost about a tenth of
// IGCV2-1.0's time in the kernel's page-fault handler.
struct Work {
  std::vector<float> A, B;  // the input ring (RA row slots and a zero row), the tile
  Scratch spre, spost;
  std::vector<const float*> in_p, res_p, b_p, rowp;
  std::vector<float*> out_p;
  // Input rows [lo, hi) are held in the ring (when `held`); output rows before `done`
  // are written (fused_chain).
  int lo = 0, hi = 0, done = 0;
  bool held = false;

  void init(const Block& b) {
    A.resize(b.rowsz * b.RA + b.zero_len);
    B.resize((size_t)b.Ppost * b.ldB + VL);  // written whole by the spatial pass
    float* zero = A.data() + (size_t)b.RA * b.rowsz;
    if (g_skip & 32) {  // comparisons: zero both buffers whole, as before zero_margins
      std::fill(A.begin(), A.end(), 0.f);
      std::fill(B.begin(), B.end(), 0.f);
    } else if (b.direct) {  // only the zero row is read
      std::memset(zero, 0, b.zero_len * sizeof(float));
    } else if (!(g_skip & 16)) {
      zero_margins(A.data(), b.RA, b.rowsz, b.W, b.pad, b.SA, b.sp.M, b.Cs);
    }
    if (b.n_pre) spre.init(b.Ppre, b.wpre);
    spost.init(b.Ppost, b.wpost);
    in_p.resize(std::max(b.Ppre, b.Ppost));
    out_p.resize(std::max(b.Ppre, b.Ppost));
    res_p.resize(b.Ppost);
    b_p.resize(b.Ppost);
    rowp.resize(b.RA);
    for (int p = 0; p < b.Ppost; ++p) b_p[p] = B.data() + (size_t)p * b.ldB;
    restart();
  }
  void restart() { held = false; lo = hi = 0; done = 0; }
};

// Output rows [oh0, oh1) (at most b.TR) of the block from the input rows `in` into the
// output rows `out`. Input rows live in a ring of RA row slots (row ih in slot ih mod
// RA), so the rows a tile shares with the one before stay where they are (the rows of a
// tile are consecutive and at most RA, so a new row never overwrites one still needed);
// rows outside the image point to a zero row (slot RA).
void run_tile(const Block& b, Work& w, const Rows& in, const Rows& out, int oh0, int oh1) {
  const Spatial& sp = b.sp;
  const int rows = oh1 - oh0, Wo = b.Wo, K = b.K, S = b.S, pad = b.pad, H = b.H, W = b.W;
  float* zero = w.A.data() + (size_t)b.RA * b.rowsz;
  if (b.direct) {
    if (!(g_skip & 2))
      spatial_direct(sp, in, H, W, oh0, rows, Wo, zero, w.rowp.data(), w.B.data(), b.ldB,
                     in.ring != 0);
  } else {
    const int ilo = oh0 * S - pad, ihi = (oh1 - 1) * S - pad + K;
    const int first = w.held && ilo >= w.lo ? std::max(ilo, w.hi) : ilo;  // rows to fill from
    int np = 0;
    for (int ih = ilo; ih < ihi; ++ih) {
      const bool inside = ih >= 0 && ih < H;
      float* arow = inside ? w.A.data() + (size_t)(ih % b.RA) * b.rowsz : zero;
      w.rowp[ih - ilo] = arow;
      if (!inside || ih < first) continue;
      const float* src = in.at(ih);
      for (int iw = 0; iw < W; ++iw, src += in.pixel) {
        float* dst = arow + (size_t)(iw + pad) * b.SA + sp.M;
        if (b.n_pre) {
          w.in_p[np] = src;
          w.out_p[np] = dst;
          ++np;
        } else {
          std::memcpy(dst, src, (size_t)b.Cin * sizeof(float));
        }
      }
    }
    if (np && !(g_skip & 1))
      run_segment(b.pre, w.in_p.data(), w.out_p.data(), nullptr, np, w.spre);
    w.lo = ilo, w.hi = ihi, w.held = true;
    if (!(g_skip & 2))
      run_spatial(sp, w.rowp.data(), b.SA, rows, Wo, w.B.data(), b.ldB, (size_t)Wo * b.ldB,
                  true);
  }
  const int P = rows * Wo;
  for (int r = 0, p = 0; r < rows; ++r) {  // a ring's slot arithmetic once per row
    float* y = out.at(oh0 + r);
    const float* x = b.residual ? in.at(oh0 + r) : nullptr;
    for (int ow = 0; ow < Wo; ++ow, ++p) {
      w.out_p[p] = y + ow * out.pixel;
      if (x) w.res_p[p] = x + ow * in.pixel;
    }
  }
  if (!(g_skip & 4))
    run_segment(b.post, w.b_p.data(), w.out_p.data(), b.residual ? w.res_p.data() : nullptr, P,
                w.spost);
}

// The input x as Rows of image n (x read in place: pixels_in_place).
Rows image_rows(const at::Tensor& x, int n) {
  return {const_cast<float*>(x.data_ptr<float>()) + n * x.stride(0), x.stride(2), x.stride(3),
          0};
}

// A call's output and its work: y for N images of the last block `b` (a pooled storage; a
// view of a wider channels-last tensor when b.out_pixel > b.Cout), and the work items
// over the threads: one per image when there are enough images, else each image in
// `bands` bands of output rows. Item i: image i / bands, rows band(i % bands).
struct Launch {
  at::Tensor y;
  int bands, items, threads;
  std::pair<int, int> band(int k, int Ho) const {
    return {(int)((int64_t)Ho * k / bands), (int)((int64_t)Ho * (k + 1) / bands)};
  }
};

Launch launch(const Block& b, int N, const at::TensorOptions& options) {
  const int threads = std::max(1, at::get_num_threads());
  const int bands = N == 0 || N >= threads ? 1 : std::min(b.Ho, (threads + N - 1) / N);
  return {pooled_output({N, b.out_pixel, b.Ho, b.Wo}, options).narrow(1, 0, b.Cout), bands,
          N * bands, std::min(threads, std::max(1, N * bands))};
}

}  // namespace

// x: (N, Cin, H, W) float32, any layout (read in place when pixels_in_place, else made
// channels-last). params / config: written by igc.deploy.chain.fused.FusedPlan (weights
// repacked there). Returns (N, Cout, Ho, Wo) with channels innermost: channels-last, or,
// when the config's output pixel stride is more than Cout, that many floats between
// pixels (a view of a channels-last tensor of that many channels; PyTorch reads it as any
// strided tensor): the next fused block reads it in place, and at 256-floats multiples of
// channels (1 KiB) the padding keeps a register block's pixels out of each other's L1
// sets.
at::Tensor fused_block(const at::Tensor& x_in, const std::vector<at::Tensor>& params_in,
                       const std::vector<int64_t>& cfg) {
  TORCH_CHECK(x_in.dim() == 4 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc fused_block: needs a 4-d float32 CPU tensor");
  const at::Tensor x =
      pixels_in_place(x_in) ? x_in : x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int N = (int)x.size(0);
  const Block b = read_block(params_in, cfg, (int)x.size(1), (int)x.size(2), (int)x.size(3),
                             x.stride(3));
  const Launch run = launch(b, N, x.options());
  const at::Tensor& y = run.y;
  if (N == 0) return y;

#pragma omp parallel num_threads(run.threads)
  {
    thread_local Work w;
    w.init(b);
#pragma omp for schedule(static)
    for (int item = 0; item < run.items; ++item) {
      const int n = item / run.bands;
      const auto [b0, b1] = run.band(item % run.bands, b.Ho);
      const Rows in = image_rows(x, n), out = image_rows(y, n);
      w.restart();
      for (int oh0 = b0; oh0 < b1; oh0 += b.TR) run_tile(b, w, in, out, oh0, std::min(b1, oh0 + b.TR));
    }
  }
  return y;
}

// The 1x1 products alone (benchmarks, tests): y = segment(x) on x (P, C_in) float32,
// tile pixels at a time as fused_block runs them. keep & 1: every tile writes the same
// (tile, C_out) block, which stays in cache as the pre segment's rows do in fused_block
// (the result is the last tile's); keep & 2: every tile reads the first tile of x, in
// cache as the post segment's input rows are. cfg: n_factors, has_tail, then G, k, o,
// act per factor; params: per factor its weight, index and bias, then the tail.
at::Tensor segment(const at::Tensor& x_in, const std::vector<at::Tensor>& params_in,
                   const std::vector<int64_t>& cfg, int64_t tile, int64_t keep) {
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc segment: needs a 2-d float32 CPU tensor");
  const at::Tensor x = x_in.contiguous();
  std::vector<at::Tensor> params;
  for (const auto& p : params_in) params.push_back(p.contiguous());
  size_t ci = 0, pi = 0;
  const int n = (int)cfg_at(cfg, ci), has_tail = (int)cfg_at(cfg, ci);
  TORCH_CHECK(n >= 1 && tile >= 1, "igc segment: bad config");
  const Segment s = read_segment(n, has_tail, cfg, ci, params, pi);
  const Factor& f0 = s.factors[0];
  TORCH_CHECK(x.size(1) == (int64_t)f0.G * f0.k, "igc segment: expected ", f0.G * f0.k,
              " input channels, got ", x.size(1));
  const int P = (int)x.size(0), Cin = (int)x.size(1), T = (int)std::min<int64_t>(tile, P);
  const bool keep_out = keep & 1, keep_in = keep & 2;
  at::Tensor y = at::empty({keep_out ? T : P, s.out}, x.options());
  if (P == 0) return y;
  Scratch sc;
  sc.init(T, std::max(s.width, VL));
  std::vector<const float*> in_p(T);
  std::vector<float*> out_p(T);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int p0 = 0; p0 < P; p0 += T) {
    const int m = std::min(T, P - p0);
    for (int p = 0; p < m; ++p) {
      in_p[p] = xp + (size_t)((keep_in ? 0 : p0) + p) * Cin;
      out_p[p] = yp + (size_t)((keep_out ? 0 : p0) + p) * s.out;
    }
    run_segment(s, in_p.data(), out_p.data(), nullptr, m, sc);
  }
  return y;
}

namespace {

// The stem: a dense KxK convolution of an image with few channels, read in NCHW and
// written in NHWC, its bias and activation fused. acc[p][v] for PB output pixels of a row
// and NV vectors of outputs, each tap's input broadcast; the image is first copied into
// a zero-padded plane per channel (a thread's buffer, kept), so no tap tests bounds.
template <int PB, int NV, int ACT>
void stem_pixels(const float* const* src, int S, const float* w, int taps, int cpad,
                 const float* bias, float* y, int ld, int nlast) {
  vf acc[PB][NV];
  _Pragma("GCC unroll 32")
  for (int v = 0; v < NV; ++v) {
    const vf b = vload(bias + v * VL);
    _Pragma("GCC unroll 32")
    for (int p = 0; p < PB; ++p) acc[p][v] = b;
  }
  for (int t = 0; t < taps; ++t, w += cpad) {
    vf wv[NV];
    _Pragma("GCC unroll 32")
    for (int v = 0; v < NV; ++v) wv[v] = vload(w + v * VL);
    const float* at = src[t];
    _Pragma("GCC unroll 32")
    for (int p = 0; p < PB; ++p) {
      const vf a = vsplat(at[p * S]);
      _Pragma("GCC unroll 32")
      for (int v = 0; v < NV; ++v) acc[p][v] = vfma(wv[v], a, acc[p][v]);
    }
  }
  _Pragma("GCC unroll 32")
  for (int p = 0; p < PB; ++p) {
    float* out = y + (size_t)p * ld;
    _Pragma("GCC unroll 32")
    for (int v = 0; v < NV - 1; ++v) vstore(out + v * VL, activate(acc[p][v], ACT));
    vstore_n(out + (NV - 1) * VL, activate(acc[p][NV - 1], ACT), nlast);
  }
}

template <int PB, int NV, int ACT>
void stem_pixels_rest(int r, const float* const* src, int S, const float* w, int taps,
                      int cpad, const float* bias, float* y, int ld, int nlast) {
  if (r == PB) {
    stem_pixels<PB, NV, ACT>(src, S, w, taps, cpad, bias, y, ld, nlast);
  } else if constexpr (PB > 1) {
    stem_pixels_rest<PB - 1, NV, ACT>(r, src, S, w, taps, cpad, bias, y, ld, nlast);
  }
}

// One output row of Wo pixels (ld floats apart) of Cout channels.
template <int NV, int ACT>
void stem_row(const float* const* src, int S, int Wo, const float* w, int taps, int cpad,
              const float* bias, float* y, int ld, int Cout) {
  constexpr int PB = pb_for(NV);
  const int nlast = Cout - (NV - 1) * VL;
  std::vector<const float*> at(taps);
  int ox = 0;
  for (; ox + PB <= Wo; ox += PB) {
    for (int t = 0; t < taps; ++t) at[t] = src[t] + (size_t)ox * S;
    stem_pixels<PB, NV, ACT>(at.data(), S, w, taps, cpad, bias, y + (size_t)ox * ld, ld,
                             nlast);
  }
  if (ox < Wo) {
    for (int t = 0; t < taps; ++t) at[t] = src[t] + (size_t)ox * S;
    stem_pixels_rest<PB - 1, NV, ACT>(Wo - ox, at.data(), S, w, taps, cpad, bias,
                                      y + (size_t)ox * ld, ld, nlast);
  }
}

template <int ACT>
void stem_row_act(int nv, const float* const* src, int S, int Wo, const float* w, int taps,
                  int cpad, const float* bias, float* y, int ld, int Cout) {
  switch (nv) {
    case 1: stem_row<1, ACT>(src, S, Wo, w, taps, cpad, bias, y, ld, Cout); break;
    case 2: stem_row<2, ACT>(src, S, Wo, w, taps, cpad, bias, y, ld, Cout); break;
    case 3: stem_row<3, ACT>(src, S, Wo, w, taps, cpad, bias, y, ld, Cout); break;
    default: stem_row<4, ACT>(src, S, Wo, w, taps, cpad, bias, y, ld, Cout); break;
  }
}

// A stem read and checked: x (N, C, H, W) NCHW, w (C*K*K, cpad) with row (c*K + ky)*K + kx,
// bias (cpad); act(conv(x)) has Cout channels, Ho x Wo pixels.
struct Stem {
  at::Tensor x, w, b;  // contiguous
  int N, C, H, W, K, S, pad, act, Cout, cpad, nv, taps, Ho, Wo, Hp, Wp;
};

Stem read_stem(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in,
               int64_t Cout, int64_t K, int64_t S, int64_t pad, int64_t act) {
  TORCH_CHECK(x_in.dim() == 4 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc stem_conv: needs a 4-d float32 CPU tensor");
  Stem st;
  st.x = x_in.contiguous(), st.w = w_in.contiguous(), st.b = b_in.contiguous();
  st.N = (int)st.x.size(0), st.C = (int)st.x.size(1), st.H = (int)st.x.size(2);
  st.W = (int)st.x.size(3);
  st.cpad = (int)st.w.size(1), st.taps = st.C * (int)K * (int)K, st.nv = st.cpad / VL;
  TORCH_CHECK(K >= 1 && S >= 1 && pad >= 0 && st.w.dim() == 2 && st.w.size(0) == st.taps &&
                  st.cpad % VL == 0 && st.nv >= 1 && st.nv <= 4 && st.b.numel() == st.cpad &&
                  Cout > (st.nv - 1) * VL && Cout <= st.cpad && act >= 0 && act <= 2,
              "igc stem_conv: bad weights or config");
  st.K = (int)K, st.S = (int)S, st.pad = (int)pad, st.act = (int)act, st.Cout = (int)Cout;
  TORCH_CHECK(st.H + 2 * st.pad >= st.K && st.W + 2 * st.pad >= st.K,
              "igc stem_conv: input smaller than the kernel");
  st.Ho = (st.H + 2 * st.pad - st.K) / st.S + 1;
  st.Wo = (st.W + 2 * st.pad - st.K) / st.S + 1;
  st.Hp = st.H + 2 * st.pad, st.Wp = st.W + 2 * st.pad;
  return st;
}

// The calling thread's zero-padded planes (one per channel) holding image n of the stem's
// input. The buffer is kept: its margins are zeroed once per geometry and never written
// (the geometry is the image's and the padding's, not only the padded size: another
// image and padding of the same padded size writes the margins of this one).
const float* stem_planes(const Stem& st, int n) {
  thread_local std::vector<float> planes;
  thread_local int64_t geometry[4] = {-1, -1, -1, -1};
  if (geometry[0] != st.C || geometry[1] != st.H || geometry[2] != st.W ||
      geometry[3] != st.pad) {
    planes.assign((size_t)st.C * st.Hp * st.Wp, 0.f);
    geometry[0] = st.C, geometry[1] = st.H, geometry[2] = st.W, geometry[3] = st.pad;
  }
  const float* xp = st.x.data_ptr<float>();
  for (int c = 0; c < st.C; ++c)
    for (int iy = 0; iy < st.H; ++iy)
      std::memcpy(planes.data() + ((size_t)c * st.Hp + iy + st.pad) * st.Wp + st.pad,
                  xp + (((size_t)n * st.C + c) * st.H + iy) * st.W, sizeof(float) * st.W);
  return planes.data();
}

// Output row oy of the stem from the planes `pl` into `out` (pixels ld floats apart).
void stem_output_row(const Stem& st, const float* pl, int oy, float* out, int ld) {
  thread_local std::vector<const float*> src;
  src.resize(st.taps);
  for (int c = 0, t = 0; c < st.C; ++c)
    for (int ky = 0; ky < st.K; ++ky)
      for (int kx = 0; kx < st.K; ++kx, ++t)
        src[t] = pl + ((size_t)c * st.Hp + (size_t)oy * st.S + ky) * st.Wp + kx;
  const float* w = st.w.data_ptr<float>();
  const float* b = st.b.data_ptr<float>();
  if (st.act == 0)
    stem_row_act<0>(st.nv, src.data(), st.S, st.Wo, w, st.taps, st.cpad, b, out, ld, st.Cout);
  else if (st.act == 1)
    stem_row_act<1>(st.nv, src.data(), st.S, st.Wo, w, st.taps, st.cpad, b, out, ld, st.Cout);
  else
    stem_row_act<2>(st.nv, src.data(), st.S, st.Wo, w, st.taps, st.cpad, b, out, ld, st.Cout);
}

}  // namespace

// x: (N, Cin, H, W) contiguous float32 (NCHW); w: (Cin*K*K, Cout padded to VL) with row
// (c*K + ky)*K + kx; bias: (Cout padded). Returns act(conv(x)) as (N, Cout, Ho, Wo)
// channels-last. Cout up to 4 vectors (64 floats on AVX-512).
at::Tensor stem_conv(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in,
                     int64_t Cout, int64_t K, int64_t S, int64_t pad, int64_t act) {
  const Stem st = read_stem(x_in, w_in, b_in, Cout, K, S, pad, act);
  at::Tensor y = pooled_output({st.N, Cout, st.Ho, st.Wo}, st.x.options());
  float* yp = y.data_ptr<float>();
  const int threads = std::max(1, std::min(at::get_num_threads(), st.Ho));
  for (int n = 0; n < st.N; ++n) {
    const float* pl = stem_planes(st, n);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int oy = 0; oy < st.Ho; ++oy)
      stem_output_row(st, pl, oy, yp + ((size_t)n * st.Ho + oy) * st.Wo * st.Cout, st.Cout);
  }
  return y;
}

namespace {

// One thread's view of a chain of blocks (fused_chain) for one image: the blocks, their
// buffers, the rings their outputs go to (the last one: the output image), and where
// blocks[0] reads: the image, or the rows of a stem computed from its padded planes.
struct Chain {
  const std::vector<Block>& blocks;
  std::vector<Work>& works;
  std::vector<Rows>& rings;
  Rows image;
  const Stem* stem;
  const float* planes;  // the stem's input, padded
  Rows stem_ring;
  int stem_done;  // the stem's rows before this one are written
};

// Makes the stem's output rows [lo, hi) available in its ring.
void produce_stem(Chain& ch, int lo, int hi) {
  for (int oy = std::max(ch.stem_done, lo); oy < hi; ++oy)
    stem_output_row(*ch.stem, ch.planes, oy, ch.stem_ring.at(oy), (int)ch.stem_ring.pixel);
  ch.stem_done = std::max(ch.stem_done, hi);
}

// Makes output rows [need_lo, need_hi) of block i available in its output ring,
// computing those not yet written, a tile at a time, after the input rows each tile
// needs (from block i - 1, recursively, or the stem; block 0 without a stem reads the
// image). Rows are asked for in increasing order, and a ring holds as many rows as the
// next block's tile reads, so no row still needed is overwritten.
void produce(Chain& ch, int i, int need_lo, int need_hi) {
  const Block& b = ch.blocks[i];
  Work& w = ch.works[i];
  const Rows& in = i > 0 ? ch.rings[i - 1] : ch.stem ? ch.stem_ring : ch.image;
  for (int oh0 = std::max(w.done, need_lo); oh0 < need_hi;) {
    const int oh1 = std::min(need_hi, oh0 + b.TR);
    const int lo = std::max(0, oh0 * b.S - b.pad);
    const int hi = std::min(b.H, (oh1 - 1) * b.S - b.pad + b.K);
    if (i > 0) produce(ch, i - 1, lo, hi);
    else if (ch.stem) produce_stem(ch, lo, hi);
    run_tile(b, w, in, ch.rings[i], oh0, oh1);
    oh0 = oh1;
  }
  w.done = std::max(w.done, need_hi);
}

}  // namespace

// A chain of blocks, each one's output the next one's input, in one call: x as for
// fused_block, or, with a stem (stem: its weight and bias, stem_cfg: Cout, K, S, pad, act,
// as for stem_conv), the NCHW image the stem reads; params[i] / configs[i]: block i's
// (FusedPlan). The maps between the stem and the blocks never leave the cache: each is a
// ring of as many rows as the next block's tile reads (per thread), and the blocks run
// row by row, each tile of the last block asking the rows it needs from the block
// before (produce). Bands of rows on several threads recompute the rows their windows
// share. Returns the last block's output (as fused_block).
at::Tensor fused_chain(const at::Tensor& x_in, const std::vector<at::Tensor>& stem_params,
                       const std::vector<int64_t>& stem_cfg,
                       const std::vector<std::vector<at::Tensor>>& params,
                       const std::vector<std::vector<int64_t>>& configs) {
  TORCH_CHECK(x_in.dim() == 4 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc fused_chain: needs a 4-d float32 CPU tensor");
  TORCH_CHECK(!params.empty() && params.size() == configs.size(),
              "igc fused_chain: one parameter list per config, at least one");
  TORCH_CHECK(stem_params.empty() ? stem_cfg.empty()
                                  : stem_params.size() == 2 && stem_cfg.size() == 5,
              "igc fused_chain: a stem needs its weight, bias and 5 config values");
  const bool has_stem = !stem_params.empty();
  Stem stem;
  at::Tensor x;
  int C, H, W;
  int64_t pixel;
  if (has_stem) {
    stem = read_stem(x_in, stem_params[0], stem_params[1], stem_cfg[0], stem_cfg[1],
                     stem_cfg[2], stem_cfg[3], stem_cfg[4]);
    x = stem.x;
    C = stem.Cout, H = stem.Ho, W = stem.Wo;
    pixel = padded_stride(stem.Cout);
  } else {
    x = pixels_in_place(x_in) ? x_in : x_in.contiguous(at::MemoryFormat::ChannelsLast);
    C = (int)x.size(1), H = (int)x.size(2), W = (int)x.size(3);
    pixel = x.stride(3);
  }
  const int N = (int)x.size(0), m = (int)params.size();
  const int stem_pixel = (int)pixel;
  std::vector<Block> blocks;
  std::vector<int> ring_pixel(m);
  for (int i = 0; i < m; ++i) {
    blocks.push_back(read_block(params[i], configs[i], C, H, W, pixel));
    const Block& b = blocks.back();
    C = b.Cout, H = b.Ho, W = b.Wo;
    pixel = ring_pixel[i] = i + 1 < m ? padded_stride(b.Cout) : b.out_pixel;
  }
  const Block& last = blocks.back();
  const Launch run = launch(last, N, x.options());
  const at::Tensor& y = run.y;
  if (N == 0) return y;

#pragma omp parallel num_threads(run.threads)
  {
    thread_local std::vector<Work> works;
    thread_local std::vector<std::vector<float>> ring_buf;  // m - 1 block rings, the stem's
    works.resize(m);
    ring_buf.resize(m);
    std::vector<Rows> rings(m);
    for (int i = 0; i < m; ++i) {
      works[i].init(blocks[i]);
      if (i + 1 < m) {  // as many rows as block i + 1's tile reads
        const Block& b = blocks[i];
        const int slots = blocks[i + 1].RA;
        ring_buf[i].resize((size_t)slots * b.Wo * ring_pixel[i] + VL);
        rings[i] = {ring_buf[i].data(), (int64_t)b.Wo * ring_pixel[i], ring_pixel[i], slots};
      }
    }
    Rows stem_ring{nullptr, 0, 0, 0};
    if (has_stem) {
      const int slots = blocks[0].RA;
      ring_buf[m - 1].resize((size_t)slots * stem.Wo * stem_pixel + VL);
      stem_ring = {ring_buf[m - 1].data(), (int64_t)stem.Wo * stem_pixel, stem_pixel, slots};
    }
#pragma omp for schedule(static)
    for (int item = 0; item < run.items; ++item) {
      const int n = item / run.bands;
      const auto [b0, b1] = run.band(item % run.bands, last.Ho);
      for (Work& w : works) w.restart();
      rings[m - 1] = image_rows(y, n);
      Chain ch{blocks, works, rings, has_stem ? Rows{nullptr, 0, 0, 0} : image_rows(x, n),
               has_stem ? &stem : nullptr, has_stem ? stem_planes(stem, n) : nullptr,
               stem_ring, 0};
      produce(ch, m - 1, b0, b1);
    }
  }
  return y;
}

// The head of a network: its global average pool and its classifier (issue 17). At batch 1
// both are memory-bound and ran far from the memory's rate: ATen's adaptive pool of a
// 7x7x1280 channels-last map took 12 us hot (a pass of vector adds: 3 us), its linear
// layer of 1280 -> 1000 reads 5 MB of weights in 408 us cold (a plain pass over them:
// about 230 us).

// x: (N, C, H, W) channels-last float32 -> (N, C): the mean over H and W, 64 channels
// at a time (four vector sums per pixel), a masked tail.
at::Tensor global_avg_pool(const at::Tensor& x_in) {
  TORCH_CHECK(x_in.dim() == 4 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc global_avg_pool: needs a 4-d float32 CPU tensor");
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int N = (int)x.size(0), C = (int)x.size(1), P = (int)(x.size(2) * x.size(3));
  TORCH_CHECK(P >= 1, "igc global_avg_pool: an empty map has no mean");
  at::Tensor y = at::empty({N, C}, x.options());
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const vf inv = vsplat(1.f / (float)P);
  for (int n = 0; n < N; ++n) {
    const float* xn = xp + (size_t)n * P * C;
    float* yn = yp + (size_t)n * C;
    int c = 0;
    for (; c + 4 * VL <= C; c += 4 * VL) {
      vf a[4] = {};
      for (int p = 0; p < P; ++p) {
        const float* s = xn + (size_t)p * C + c;
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; ++v) a[v] += vload(s + v * VL);
      }
      _Pragma("GCC unroll 4")
      for (int v = 0; v < 4; ++v) vstore(yn + c + v * VL, a[v] * inv);
    }
    for (; c < C; c += VL) {
      const int m = std::min(VL, C - c);
      vf a = {};
      for (int p = 0; p < P; ++p) a += vload_n(xn + (size_t)p * C + c, m);
      vstore_n(yn + c, a * inv, m);
    }
  }
  return y;
}

namespace {

// Output features per packed block of the linear layer (igc.deploy.chain.head's
// LINEAR_BLOCK): Kg rows of 64 weights, one sequential stream, whatever the vector width.
constexpr int kLinearBlock = 64;

// y[n][o] = b[o] + sum_k x[n][k] * w[o][k] for NB images and 4 vectors of outputs of a
// packed block (rows kLinearBlock floats apart; on AVX-512 the whole block, with 8-float
// vectors half of it per pass), each weight row loaded once for the NB images; m: the
// outputs wanted from this pass (the rest are the block's zero padding).
template <int NB>
void linear_block(const float* x, int ldx, const float* w, int Kg, const float* b, float* y,
                  int ldy, int m) {
  vf acc[NB][4];
  _Pragma("GCC unroll 4")
  for (int v = 0; v < 4; ++v) {
    const vf bv = vload(b + v * VL);
    _Pragma("GCC unroll 4")
    for (int n = 0; n < NB; ++n) acc[n][v] = bv;
  }
  for (int k = 0; k < Kg; ++k, w += kLinearBlock) {
    vf wv[4];
    _Pragma("GCC unroll 4")
    for (int v = 0; v < 4; ++v) wv[v] = vload(w + v * VL);
    _Pragma("GCC unroll 4")
    for (int n = 0; n < NB; ++n) {
      const vf a = vsplat(x[(size_t)n * ldx + k]);
      _Pragma("GCC unroll 4")
      for (int v = 0; v < 4; ++v) acc[n][v] = vfma(wv[v], a, acc[n][v]);
    }
  }
  for (int n = 0; n < NB; ++n)
    for (int v = 0; v < 4 && v * VL < m; ++v)
      vstore_n(y + (size_t)n * ldy + v * VL, acc[n][v], m - v * VL);
}

}  // namespace

// A linear layer of G groups (a dense one: G = 1) for a few images: x (N, G*Kg) float32;
// w (G, B, Kg, BW) packed by igc.deploy.chain.head (group g's outputs in blocks of
// BW = kLinearBlock floats, w[g][b][k][j] = W[g*O/G + b*BW + j][k], zero past O/G);
// bias (G, B*BW). Returns (N, O). Images four at a time.
at::Tensor linear(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in,
                  int64_t O) {
  TORCH_CHECK(x_in.dim() == 2 && x_in.scalar_type() == at::kFloat && x_in.device().is_cpu(),
              "igc linear: needs a 2-d float32 CPU tensor");
  const at::Tensor x = x_in.contiguous(), w = w_in.contiguous(), b = b_in.contiguous();
  TORCH_CHECK(w.dim() == 4 && w.size(3) == kLinearBlock && b.dim() == 2,
              "igc linear: bad packing");
  const int G = (int)w.size(0), B = (int)w.size(1), Kg = (int)w.size(2), BW = kLinearBlock;
  TORCH_CHECK(O >= 1 && O % G == 0 && O / G <= (int64_t)B * BW &&
                  b.size(0) == G && b.size(1) == (int64_t)B * BW,
              "igc linear: bad packing");
  TORCH_CHECK(x.size(1) == (int64_t)G * Kg, "igc linear: expected ", G * Kg,
              " input features, got ", x.size(1));
  const int N = (int)x.size(0), Og = (int)(O / G), K = G * Kg;
  at::Tensor y = at::empty({N, O}, x.options());
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int n0 = 0; n0 < N; n0 += 4) {
    const int nb = std::min(4, N - n0);
    for (int g = 0; g < G; ++g)
      for (int blk = 0; blk < B; ++blk) {
        const float* xs = xp + (size_t)n0 * K + (size_t)g * Kg;
        const float* ws = w.data_ptr<float>() + ((size_t)g * B + blk) * Kg * BW;
        const float* bs = b.data_ptr<float>() + ((size_t)g * B + blk) * BW;
        float* ys = yp + (size_t)n0 * O + (size_t)g * Og + (size_t)blk * BW;
        const int m = std::min(BW, Og - blk * BW);
        for (int c = 0; c < m; c += 4 * VL) {  // one pass on AVX-512, two on AVX2
          switch (nb) {
            case 1: linear_block<1>(xs, K, ws + c, Kg, bs + c, ys + c, (int)O, m - c); break;
            case 2: linear_block<2>(xs, K, ws + c, Kg, bs + c, ys + c, (int)O, m - c); break;
            case 3: linear_block<3>(xs, K, ws + c, Kg, bs + c, ys + c, (int)O, m - c); break;
            default: linear_block<4>(xs, K, ws + c, Kg, bs + c, ys + c, (int)O, m - c); break;
          }
        }
      }
  }
  return y;
}

int simd_width() { return VL; }
void set_variant(int64_t v) { g_variant = (int)v; }
void set_dw_variant(int64_t v) { g_dw_variant = (int)v; }
void set_skip(int64_t v) { g_skip = (int)v; }
void set_stride_pad(int64_t v) { g_stride_pad = (int)v; }
void set_half(int64_t v) { g_half = (int)v; }
void set_direct(int64_t v) { g_direct = (int)v; }

std::map<std::string, int64_t> pool_stats() {
  OutputPool& pool = output_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return {{"entries", (int64_t)pool.entries.size()}, {"bytes", (int64_t)pool.bytes},
          {"hits", pool.hits}, {"misses", pool.misses}, {"enabled", pool.enabled},
          {"max_entries", (int64_t)kPoolEntries}, {"max_bytes", (int64_t)kPoolBytes}};
}
void clear_pool() {
  OutputPool& pool = output_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.entries.clear();
  pool.bytes = 0;
}
void set_pool(bool on) {
  OutputPool& pool = output_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  pool.enabled = on;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fused_block", &fused_block, "igc fused IGC block (NHWC float32)");
  m.def("fused_chain", &fused_chain, "igc: a chain of fused blocks in one call, the maps "
        "between them kept in rings of rows");
  m.def("segment", &segment, "igc: the 1x1 products of a segment alone ((P, C) float32)");
  m.def("set_variant", &set_variant, "choose the 1x1 product (benchmarks): 0 micro-kernel, "
        "-1 ATen GEMM per branch per tile, -2 micro-kernel with gathered permutations");
  m.def("set_dw_variant", &set_dw_variant, "choose the depthwise pass (benchmarks): 0 the "
        "3x3 register-blocked pass where it applies, 1 the generic loop, 2 the 3x3 pass with "
        "its input loads never pinned in registers, 3 the 3x3 pass one output row per "
        "register block");
  m.def("set_skip", &set_skip, "profiling only (wrong outputs): leave out parts of "
        "fused_block, 1 pre, 2 spatial, 4 post, 8 trailing permutations (copied instead), "
        "16 zeroing the input ring's margins; 32 (right outputs) zero the buffers whole");
  m.def("set_stride_pad", &set_stride_pad, "benchmarks: 1 (default) pads pixel strides "
        "that are multiples of 1 KiB by one cache line, 0 does not");
  m.def("set_half", &set_half, "benchmarks: 1 (default) runs 1x1 branches of at most 8 "
        "outputs on half vectors, 0 on full vectors with the upper lanes masked");
  m.def("set_direct", &set_direct, "benchmarks and tests: 1 (default) blocks without a pre "
        "segment read their input rows in place, 0 copy them into the ring");
  m.def("stem_conv", &stem_conv, "igc: a dense KxK convolution of an NCHW image with few "
        "channels, bias and activation fused, written NHWC");
  m.def("global_avg_pool", &global_avg_pool, "igc: the mean over H and W of a "
        "channels-last (N, C, H, W) float32 map, as (N, C)");
  m.def("linear", &linear, "igc: a (grouped) linear layer of a few images, weights packed by "
        "igc.deploy.chain.head");
  m.def("simd_width", &simd_width, "floats per SIMD vector the kernel was built for");
  m.def("pool_stats", &pool_stats, "the output pool: entries, bytes, hits, misses (since "
        "the process started), enabled, max_entries, max_bytes");
  m.def("clear_pool", &clear_pool, "drop the pool's references to its outputs (outputs still "
        "referenced elsewhere stay alive there)");
  m.def("set_pool", &set_pool, "benchmarks: true (default) reuses unreferenced outputs, "
        "false allocates every output afresh (what the pool holds stays for when it is "
        "switched on again; clear_pool frees it)");
}
