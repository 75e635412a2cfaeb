/* The simulator's inner loop: one input spike's update of a row of neurons (consecutive output pixels, all
 * C_out channels; weights are stored out-channel fastest, so a row is contiguous in weights and vmem).
 *
 * Semantics are the scalar rule's (ss_one), neuron by neuron: v += w; below the floor -> floor (counted);
 * v >= threshold -> fire, then reset (to 0, or subtract the threshold); above +32767 -> saturate (counted).
 * Which neurons fired is written to `fired` as bits (lane i is bit i % 16 of fired[i / 16]), for the caller,
 * who emits the spikes in the reference order (ss_collect).
 *
 * Three implementations, picked once at run time from what the CPU offers (ss_best_isa):
 *   SS_ISA_AVX512  32 int16 lanes per step, masked tails (AVX-512 BW/VL)
 *   SS_ISA_AVX2    16 int16 lanes per step, scalar tail
 *   SS_ISA_PORTABLE the scalar rule in int32, left to the compiler's auto-vectoriser (any CPU, any compiler)
 * The vector ones apply an exact int16 rule (derived above ss_row_avx512_) to every block, branch-free. It
 * holds for every threshold the chip accepts (1 <= threshold_high <= 32767, threshold_low below it); other
 * thresholds take the portable path. Written with intrinsics, not GCC vector extensions: GCC 12
 * scalarised some int16 vector compares when lowering 64-byte vectors to AVX2 (10x slower).
 */
#ifndef SPECKSTREAM_ROW_KERNEL_H
#define SPECKSTREAM_ROW_KERNEL_H
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define SS_INLINE static inline __attribute__((always_inline))
#else
#define SS_INLINE static inline
#endif

#if defined(__GNUC__) && defined(__x86_64__) && (__GNUC__ >= 9 || defined(__clang__))
#define SS_X86 1
#include <immintrin.h>
#define SS_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,popcnt")))
#define SS_AVX2 __attribute__((target("avx2,popcnt")))
#endif

enum { SS_ISA_PORTABLE = 0, SS_ISA_AVX2 = 1, SS_ISA_AVX512 = 2 };

/* One neuron's update in int32, branch-free so that loops of it vectorise (``keep`` is 0 for return-to-zero,
 * 1 for subtract): the definition the vector paths must match, and their scalar tail. */
SS_INLINE int ss_one(int16_t *v, int8_t w, int thr_lo, int thr_hi, int keep, uint8_t *fired, int *nclamp,
                     int *nsat)
{
    int x = (int)*v + (int)w;
    int lo = x < thr_lo;
    x = lo ? thr_lo : x;
    int f = x >= thr_hi;
    int r = keep * (x - thr_hi);
    x = f ? r : x;
    int s = x > 32767;
    x = s ? 32767 : x;
    *v = (int16_t)x;
    *fired = (uint8_t)f;
    *nclamp += lo;
    *nsat += s;
    return f;
}

/* Whether the int16 paths are exact for these thresholds (the chip's own range; see the header comment). */
SS_INLINE int ss_int16_ok(int thr_lo, int thr_hi)
{
    return thr_hi >= 1 && thr_hi <= 32767 && thr_lo >= -32768 && thr_lo < thr_hi;
}

/* The rule over lanes [0, n) of a row whose bits start at lane `lane0` of `fired` (a multiple of 16), n <= 16384:
 * the update runs over the whole row into a byte buffer, so it stays one plain element-wise loop the compiler
 * vectorises (a loop over 16-lane chunks did not vectorise under Python's -fwrapv: 3x slower); the bytes are
 * packed into bits only where something fired. */
SS_INLINE int ss_row_portable(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo, int thr_hi,
                              int rtz, uint16_t *__restrict fired, int lane0, int *nclamp, int *nsat)
{
    int nf = 0, nl = 0, ns = 0;  /* local counts: through the pointers, aliasing would stop vectorisation */
    const int keep = rtz ? 0 : 1;
    uint8_t fb[16384];
    for (int i = 0; i < n; i++)
        nf += ss_one(v + i, w[i], thr_lo, thr_hi, keep, fb + i, &nl, &ns);
    for (int g = 0; g < n; g += 16) {
        unsigned bits = 0;
        if (nf)
            for (int i = 0; i < 16 && g + i < n; i++)
                bits |= (unsigned)fb[g + i] << i;
        fired[(lane0 + g) >> 4] = (uint16_t)bits;
    }
    *nclamp += nl;
    *nsat += ns;
    return nf;
}

SS_INLINE int ss_row_portable0(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo, int thr_hi,
                               int rtz, uint16_t *__restrict fired, int *nclamp, int *nsat)
{
    return ss_row_portable(v, w, n, thr_lo, thr_hi, rtz, fired, 0, nclamp, nsat);
}

#ifdef SS_X86
/* The exact int16 rule, per lane, with xs = v + w saturating and xw = v + w wrapping:
 *   - xs != xw: the true sum left int16. Below -32768 (xs saturated negative) it is under any floor: clamp to
 *     threshold_low. Above +32767 (xs = 32767 >= any threshold): it fires.
 *   - x = max(xs, threshold_low); fires when x >= threshold_high.
 *   - subtract-reset leaves true - thr. Without overflow that is xw - thr, in 0..32766. With it, true - thr =
 *     xw - thr + 65536, which is what xw - thr reads as in wrapping int16 when it fits; a *negative* wrapped
 *     difference means it passed +32767: saturate (counted). So one rule serves every fired lane:
 *     rw = xw - thr (wrapping); saturated = rw < 0; result = saturated ? 32767 : rw.
 */
/* One block of 32 lanes of the rule; `lanes` masks the compares (all ones for a whole block). */
#define SS_AVX512_BLOCK(vv, ww, lanes, x, f, lo, s)                                                          \
    do {                                                                                                      \
        const __m512i xs_ = _mm512_adds_epi16(vv, ww);                                                       \
        const __m512i xw_ = _mm512_add_epi16(vv, ww);                                                        \
        const __mmask32 ovf_ = _mm512_cmpneq_epi16_mask(xs_, xw_);                                          \
        lo = _mm512_mask_cmplt_epi16_mask(lanes, xs_, lo_v) | _mm512_mask_cmplt_epi16_mask(ovf_, xs_, zero); \
        x = _mm512_max_epi16(xs_, lo_v);                                                                     \
        f = _mm512_mask_cmpge_epi16_mask(lanes, x, hi_v);                                                    \
        s = 0;                                                                                                \
        if (rtz) { /* a constant in each of the two inlined copies below */                                  \
            x = _mm512_mask_mov_epi16(x, f, zero);                                                           \
        } else {                                                                                              \
            const __m512i rw_ = _mm512_sub_epi16(xw_, hi_v);                                                 \
            s = _mm512_mask_cmplt_epi16_mask(f, rw_, zero);                                                  \
            x = _mm512_mask_mov_epi16(x, f, _mm512_mask_mov_epi16(rw_, s, top));                             \
        }                                                                                                     \
    } while (0)

/* The block's results: fired bits (two 16-lane halves, lower lanes first: x86 is little-endian) and counts. */
#define SS_AVX512_COUNT(f, lo, s)                                                                            \
    do {                                                                                                      \
        const uint32_t fbits = f;                                                                             \
        memcpy(fired + (o >> 4), &fbits, sizeof fbits);                                                      \
        nf += __builtin_popcount(f);                                                                          \
        *nclamp += __builtin_popcount(lo);                                                                    \
        *nsat += __builtin_popcount(s);                                                                       \
    } while (0)

SS_AVX512 SS_INLINE int ss_row_avx512_(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo,
                                       int thr_hi, const int rtz, uint16_t *__restrict fired, int *nclamp,
                                       int *nsat)
{
    /* Branch-free per block: a branch to skip quiet blocks paid for itself on a trained network (6 %) but cost
     * 2.6x on a stream where a third of the blocks clamp at random (mispredictions). Whole blocks load and
     * store without masks: a masked store does not forward to a later load of the same lanes (the next spike
     * into the same pixels) and stalls it (4-8 % on the trained networks). The tail's lanes past n are masked
     * off in the loads, the compares (an input mask costs nothing) and the store. */
    const __m512i lo_v = _mm512_set1_epi16((short)thr_lo), hi_v = _mm512_set1_epi16((short)thr_hi);
    const __m512i top = _mm512_set1_epi16(32767), zero = _mm512_setzero_si512();
    int nf = 0, o = 0;
    __m512i x;
    __mmask32 f, lo, s;
    for (; o + 32 <= n; o += 32) {
        const __m512i vv = _mm512_loadu_si512((const void *)(v + o));
        const __m512i ww = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + o)));
        SS_AVX512_BLOCK(vv, ww, 0xFFFFFFFFu, x, f, lo, s);
        _mm512_storeu_si512((void *)(v + o), x);
        SS_AVX512_COUNT(f, lo, s);
    }
    if (o < n) {
        const __mmask32 lanes = ((__mmask32)1 << (n - o)) - 1u;
        const __m512i vv = _mm512_maskz_loadu_epi16(lanes, v + o);
        const __m512i ww = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(lanes, w + o));
        SS_AVX512_BLOCK(vv, ww, lanes, x, f, lo, s);
        _mm512_mask_storeu_epi16(v + o, lanes, x);
        SS_AVX512_COUNT(f, lo, s);
    }
    return nf;
}

SS_AVX512 SS_INLINE int ss_row_avx512(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo,
                                      int thr_hi, int rtz, uint16_t *__restrict fired, int *nclamp, int *nsat)
{
    return rtz ? ss_row_avx512_(v, w, n, thr_lo, thr_hi, 1, fired, nclamp, nsat)
               : ss_row_avx512_(v, w, n, thr_lo, thr_hi, 0, fired, nclamp, nsat);
}

SS_AVX2 SS_INLINE int ss_row_avx2_(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo,
                                   int thr_hi, const int rtz, uint16_t *__restrict fired, int *nclamp,
                                   int *nsat)
{
    /* AVX2 compares are > and == only: x >= thr is x > thr - 1 (fits: thr >= 1). Branch-free, as above. */
    const __m256i lo_v = _mm256_set1_epi16((short)thr_lo), hi_v = _mm256_set1_epi16((short)thr_hi);
    const __m256i hi_m1 = _mm256_set1_epi16((short)(thr_hi - 1));
    const __m256i top = _mm256_set1_epi16(32767), zero = _mm256_setzero_si256(), ones = _mm256_set1_epi16(-1);
    int nf = 0, o = 0;
    for (; o + 16 <= n; o += 16) {
        const __m256i vv = _mm256_loadu_si256((const __m256i *)(v + o));
        const __m256i ww = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + o)));
        const __m256i xs = _mm256_adds_epi16(vv, ww);
        const __m256i xw = _mm256_add_epi16(vv, ww);
        const __m256i ovf = _mm256_xor_si256(_mm256_cmpeq_epi16(xs, xw), ones);
        const __m256i neg = _mm256_and_si256(ovf, _mm256_cmpgt_epi16(zero, xs));
        const __m256i lo = _mm256_or_si256(_mm256_cmpgt_epi16(lo_v, xs), neg);
        __m256i x = _mm256_max_epi16(xs, lo_v);
        const __m256i f = _mm256_cmpgt_epi16(x, hi_m1);
        __m256i s = zero;
        if (rtz) {
            x = _mm256_andnot_si256(f, x);
        } else {
            const __m256i rw = _mm256_sub_epi16(xw, hi_v);
            s = _mm256_and_si256(f, _mm256_srai_epi16(rw, 15));
            x = _mm256_blendv_epi8(x, _mm256_blendv_epi8(rw, top, s), f);
        }
        _mm256_storeu_si256((__m256i *)(v + o), x);
        const unsigned fbits = (unsigned)_mm_movemask_epi8(
            _mm_packs_epi16(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1)));  /* one bit per lane */
        fired[o >> 4] = (uint16_t)fbits;
        nf += __builtin_popcount(fbits);
        *nclamp += __builtin_popcount((unsigned)_mm256_movemask_epi8(lo)) >> 1;
        *nsat += __builtin_popcount((unsigned)_mm256_movemask_epi8(s)) >> 1;
    }
    return nf + ss_row_portable(v + o, w + o, n - o, thr_lo, thr_hi, rtz, fired, o, nclamp, nsat);
}

SS_AVX2 SS_INLINE int ss_row_avx2(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo,
                                  int thr_hi, int rtz, uint16_t *__restrict fired, int *nclamp, int *nsat)
{
    return rtz ? ss_row_avx2_(v, w, n, thr_lo, thr_hi, 1, fired, nclamp, nsat)
               : ss_row_avx2_(v, w, n, thr_lo, thr_hi, 0, fired, nclamp, nsat);
}
#endif

/* A neuron that fired: channel and output pixel. */
typedef struct {
    uint16_t o, ox, oy;
} ss_fired;

/* Append the neurons whose bits are set in lanes [start, start + n) of fired (one output pixel's channels) to
 * out, channel ascending: 32 lanes per word, set bits found with count-trailing-zeros (a byte-per-neuron scan
 * spent its time in mispredicted branches: spikes are sparse and irregular). */
SS_INLINE int ss_collect(const uint16_t *__restrict fired, int start, int n, int ox, int oy,
                         ss_fired *__restrict out)
{
    int m = 0;
    const int end = start + n;
    for (int b = start & ~15; b < end; b += 32) {
        uint32_t word = (uint32_t)fired[b >> 4] | ((uint32_t)fired[(b >> 4) + 1] << 16);
        if (b < start)
            word &= ~0u << (start - b);
        if (end - b < 32)
            word &= (1u << (end - b)) - 1u;
        while (word) {
#if defined(__GNUC__)
            const int j = b + __builtin_ctz(word);
#else
            int j = b;
            for (uint32_t t = word; !(t & 1u); t >>= 1)
                j++;
#endif
            out[m].o = (uint16_t)(j - start);
            out[m].ox = (uint16_t)ox;
            out[m].oy = (uint16_t)oy;
            m++;
            word &= word - 1u;
        }
    }
    return m;
}

/* ss_collect for a pixel whose lanes are whole words (C_out a multiple of 16, start = b * C_out): no masks. */
SS_INLINE int ss_collect_words(const uint16_t *__restrict fired, int start, int n, int ox, int oy,
                               ss_fired *__restrict out)
{
    int m = 0;
    const uint16_t *words = fired + (start >> 4);
    for (int i = 0; i < (n >> 4); i++)
        for (uint32_t word = words[i]; word; word &= word - 1u) {
            out[m].o = (uint16_t)(i * 16 + __builtin_ctz(word));
            out[m].ox = (uint16_t)ox;
            out[m].oy = (uint16_t)oy;
            m++;
        }
    return m;
}

/* The fired neurons of a row of span pixels of C_out channels, pixel span - 1 first (kx ascending), each
 * channel ascending. */
SS_INLINE int ss_collect_row(const uint16_t *__restrict fired, int span, int C_out, int ox0, int oy,
                             ss_fired *__restrict out)
{
    int m = 0;
    if ((C_out & 15) == 0) {
        for (int b = span - 1; b >= 0; b--)
            m += ss_collect_words(fired, b * C_out, C_out, ox0 + b, oy, out + m);
    } else {
        for (int b = span - 1; b >= 0; b--)
            m += ss_collect(fired, b * C_out, C_out, ox0 + b, oy, out + m);
    }
    return m;
}

/* What a spike into one core needs, gathered once per core when the engine is built (Core.__init__), so a
 * spike costs one pointer instead of a dozen arguments. `isa` is already lowered to SS_ISA_PORTABLE where
 * the thresholds are outside the range the int16 paths are exact for. */
typedef struct {
    int16_t *vbase;       /* the core's vmem, [H_out][W_out][C_out] */
    const int8_t *wbase;  /* the core's weights, [C_in][k][k - 1 - kx][C_out] */
    int k, sx, sy, sy_shift, py, px, C_out, H_out, W_out, thr_lo, thr_hi, rtz, isa;
} ss_core;

/* One input spike (channel c, position x, y) into a core with x-stride 1: every row it reaches is updated
 * (one contiguous block of span * C_out neurons per ky, see Core.convolve) and the neurons that fired are
 * appended to out in the reference order: ky ascending, kx ascending (output x descending), channel
 * ascending. One call per spike instead of one per ky, so the window bounds are worked out once and the
 * firing neurons come back as a list. Returns how many fired (at most k * k * C_out). */
#define SS_DEFINE_SPIKE(NAME, ATTR, ROW)                                                                     \
    ATTR static int NAME(const ss_core *__restrict g, int c, int x, int y, uint16_t *__restrict fired,        \
                         ss_fired *__restrict out, int64_t *clamps, uint64_t *saturated, uint64_t *n_updates) \
    {                                                                                                         \
        const int k = g->k, C_out = g->C_out, W_out = g->W_out, px = g->px;                                   \
        const int kx_hi = x + px < k - 1 ? x + px : k - 1;                                                    \
        const int kx_lo = x + px - (W_out - 1) > 0 ? x + px - (W_out - 1) : 0;                                \
        if (kx_lo > kx_hi)                                                                                    \
            return 0;                                                                                         \
        const int ox0 = x + px - kx_hi, span = kx_hi - kx_lo + 1, n = span * C_out;                           \
        const int8_t *w0 = g->wbase + ((c * k) * k + (k - 1 - kx_hi)) * C_out;                               \
        int nout = 0, nclamp = 0, nsat = 0;                                                                   \
        for (int ky = 0; ky < k; ky++) {                                                                      \
            const int ny = y + g->py - ky;                                                                    \
            if (ny < 0)                                                                                       \
                break; /* ny only decreases with ky */                                                        \
            if (ny & (g->sy - 1)) /* strides are powers of two */                                             \
                continue;                                                                                     \
            const int oy = ny >> g->sy_shift;                                                                 \
            if (oy >= g->H_out)                                                                               \
                continue;                                                                                     \
            *n_updates += (uint64_t)n;                                                                        \
            if (ROW(g->vbase + (oy * W_out + ox0) * C_out, w0 + ky * k * C_out, n, g->thr_lo, g->thr_hi,       \
                    g->rtz, fired, &nclamp, &nsat))                                                           \
                nout += ss_collect_row(fired, span, C_out, ox0, oy, out + nout);                              \
        }                                                                                                     \
        *clamps += nclamp;                                                                                    \
        *saturated += (uint64_t)nsat;                                                                         \
        return nout;                                                                                          \
    }

SS_DEFINE_SPIKE(ss_spike_portable, , ss_row_portable0)
#ifdef SS_X86
SS_DEFINE_SPIKE(ss_spike_avx512, SS_AVX512, ss_row_avx512)
SS_DEFINE_SPIKE(ss_spike_avx2, SS_AVX2, ss_row_avx2)
#endif

/* The fastest implementation this CPU runs (CPUID and the OS's saved register state, via libgcc). */
static int ss_best_isa(void)
{
#ifdef SS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return SS_ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return SS_ISA_AVX2;
#endif
    return SS_ISA_PORTABLE;
}

/* The implementation for these thresholds on `isa` (from ss_best_isa, or lower): the portable rule wherever
 * the int16 paths would not be exact. */
static inline int ss_isa_for(int isa, int thr_lo, int thr_hi)
{
    return ss_int16_ok(thr_lo, thr_hi) ? isa : SS_ISA_PORTABLE;
}

/* A spike into a core with x-stride 1 (g->sx == 1), on the core's implementation. */
static inline int ss_spike_sx1(const ss_core *g, int c, int x, int y, uint16_t *fired, ss_fired *out,
                               int64_t *clamps, uint64_t *saturated, uint64_t *n_updates)
{
#ifdef SS_X86
    if (g->isa == SS_ISA_AVX512)
        return ss_spike_avx512(g, c, x, y, fired, out, clamps, saturated, n_updates);
    if (g->isa == SS_ISA_AVX2)
        return ss_spike_avx2(g, c, x, y, fired, out, clamps, saturated, n_updates);
#endif
    return ss_spike_portable(g, c, x, y, fired, out, clamps, saturated, n_updates);
}

/* One row of n neurons (the strided path, the tests and the bench), same dispatch. */
#define SS_DEFINE_ROW(NAME, ATTR, ROW)                                                                       \
    ATTR static int NAME(int16_t *v, const int8_t *w, int n, int thr_lo, int thr_hi, int rtz, uint16_t *fired,\
                         int64_t *clamps, uint64_t *saturated)                                               \
    {                                                                                                         \
        int nclamp = 0, nsat = 0;                                                                             \
        int nf = ROW(v, w, n, thr_lo, thr_hi, rtz, fired, &nclamp, &nsat);                                    \
        *clamps += nclamp;                                                                                    \
        *saturated += (uint64_t)nsat;                                                                         \
        return nf;                                                                                            \
    }
SS_DEFINE_ROW(ss_rowfn_portable, , ss_row_portable0)
#ifdef SS_X86
SS_DEFINE_ROW(ss_rowfn_avx512, SS_AVX512, ss_row_avx512)
SS_DEFINE_ROW(ss_rowfn_avx2, SS_AVX2, ss_row_avx2)
#endif

static inline int ss_row_update(int isa, int16_t *v, const int8_t *w, int n, int thr_lo, int thr_hi, int rtz,
                                uint16_t *fired, int64_t *clamps, uint64_t *saturated)
{
#ifdef SS_X86
    if (isa == SS_ISA_AVX512 && ss_int16_ok(thr_lo, thr_hi))
        return ss_rowfn_avx512(v, w, n, thr_lo, thr_hi, rtz, fired, clamps, saturated);
    if (isa == SS_ISA_AVX2 && ss_int16_ok(thr_lo, thr_hi))
        return ss_rowfn_avx2(v, w, n, thr_lo, thr_hi, rtz, fired, clamps, saturated);
#endif
    (void)isa;
    return ss_rowfn_portable(v, w, n, thr_lo, thr_hi, rtz, fired, clamps, saturated);
}

/* The bound the bench reports against: a plain widening int8 -> int16 add over the same bytes (no floor,
 * threshold or spike extraction), the fastest this machine moves a row of updates; built for the same isa. */
#define SS_DEFINE_BOUND(NAME, ATTR)                                                                          \
    ATTR static void NAME(int16_t *__restrict v, const int8_t *__restrict w, int n)                           \
    {                                                                                                         \
        for (int o = 0; o < n; o++)                                                                           \
            v[o] = (int16_t)(v[o] + w[o]);                                                                    \
    }
SS_DEFINE_BOUND(ss_bound_portable, )
#ifdef SS_X86
SS_DEFINE_BOUND(ss_bound_avx512, SS_AVX512)
SS_DEFINE_BOUND(ss_bound_avx2, SS_AVX2)
#endif

static inline void ss_add_bound(int isa, int16_t *v, const int8_t *w, int n)
{
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) {
        ss_bound_avx512(v, w, n);
        return;
    }
    if (isa == SS_ISA_AVX2) {
        ss_bound_avx2(v, w, n);
        return;
    }
#endif
    (void)isa;
    ss_bound_portable(v, w, n);
}

#endif
