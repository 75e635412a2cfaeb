/* The simulator's inner loop: one input spike's update of one row of C_out neurons (one output pixel).
 *
 * Written as branch-free element-wise int32 arithmetic so the compiler vectorises it (weights are stored
 * out-channel fastest, so a row is contiguous in both weights and vmem). The semantics are the scalar
 * loop's, neuron by neuron: v += w; below the floor -> floor (counted); v >= threshold -> fire, then reset
 * (to 0, or subtract the threshold); above +32767 -> saturate (counted). Which neurons fired is written to
 * `fired` (0/1): the caller emits their spikes in channel order, exactly as the scalar loop did.
 *
 * GCC on x86-64 Linux builds x86-64-v4 (AVX-512), AVX2 and baseline (SSE2) versions and picks one at load time
 * (target_clones / ifunc); other compilers get the portable loop, vectorised for the build's baseline.
 */
#ifndef SPECKSTREAM_ROW_KERNEL_H
#define SPECKSTREAM_ROW_KERNEL_H
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define SS_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define SS_CLONES
#endif

#if defined(__GNUC__) && (__GNUC__ >= 9 || defined(__clang__))
#define SS_VECTOR 1
#include <string.h>
typedef int32_t ss_i32x16 __attribute__((vector_size(64)));
typedef int16_t ss_i16x16 __attribute__((vector_size(32)));
typedef int8_t ss_i8x16 __attribute__((vector_size(16)));
typedef uint8_t ss_u8x16 __attribute__((vector_size(16)));
#endif

/* One neuron's update, branch-free so that the compiler vectorises the loop it is inlined into (``keep`` is
 * 0 for return-to-zero, 1 for subtract). The bulk of a row and its scalar tail both run it. */
static inline int ss_one(int16_t *v, int8_t w, int thr_lo, int thr_hi, int keep, uint8_t *fired, int *nclamp,
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

SS_CLONES
int ss_row_update(int16_t *__restrict v, const int8_t *__restrict w, int n, int thr_lo, int thr_hi, int rtz,
                  uint8_t *__restrict fired, int64_t *__restrict clamps, uint64_t *__restrict saturated)
{
    int nfired = 0, nclamp = 0, nsat = 0, o = 0;
    const int keep = rtz ? 0 : 1;
    /* The bulk, whole multiples of 32 neurons: plain element-wise code the compiler vectorises itself. */
    const int bulk = n & ~31;
    for (o = 0; o < bulk; o++)
        nfired += ss_one(v + o, w[o], thr_lo, thr_hi, keep, fired + o, &nclamp, &nsat);
#ifdef SS_VECTOR
    /* A remaining block of 16 (C_out = 16, 48, 80 ... are common) in explicit vectors rather than scalar
     * code: masks are -1 / 0, selects are bitwise; the three counts share one horizontal sum. */
    if (n - o >= 16) {
        const ss_i32x16 lo_v = (ss_i32x16){0} + thr_lo, hi_v = (ss_i32x16){0} + thr_hi;
        const ss_i32x16 top = (ss_i32x16){0} + 32767, keep_v = (ss_i32x16){0} + (rtz ? 0 : -1);
        ss_i16x16 vv;
        ss_i8x16 ww;
        memcpy(&vv, v + o, sizeof vv);
        memcpy(&ww, w + o, sizeof ww);
        ss_i32x16 x = __builtin_convertvector(vv, ss_i32x16) + __builtin_convertvector(ww, ss_i32x16);
        ss_i32x16 lo = x < lo_v;
        x = (lo & lo_v) | (~lo & x);
        ss_i32x16 f = x >= hi_v;
        ss_i32x16 r = (x - hi_v) & keep_v;
        x = (f & r) | (~f & x);
        ss_i32x16 s = x > top;
        x = (s & top) | (~s & x);
        ss_i16x16 out = __builtin_convertvector(x, ss_i16x16);
        ss_u8x16 fb = __builtin_convertvector(-f, ss_u8x16);
        memcpy(v + o, &out, sizeof out);
        memcpy(fired + o, &fb, sizeof fb);
        ss_i32x16 packed = -f - (lo << 8) - (s << 16);  /* each count <= 16 fits its byte */
        int sum = 0;
        for (int i = 0; i < 16; i++)
            sum += packed[i];
        nfired += sum & 0xFF;
        nclamp += (sum >> 8) & 0xFF;
        nsat += (sum >> 16) & 0xFF;
        o += 16;
    }
#endif
    for (; o < n; o++)
        nfired += ss_one(v + o, w[o], thr_lo, thr_hi, keep, fired + o, &nclamp, &nsat);
    *clamps += nclamp;
    *saturated += (uint64_t)nsat;
    return nfired;
}

/* The bound the bench reports against: a plain widening int8 -> int16 add over the same bytes (no floor,
 * threshold or spike extraction), the fastest this machine moves a row of updates. */
SS_CLONES
void ss_add_bound(int16_t *__restrict v, const int8_t *__restrict w, int n)
{
    for (int o = 0; o < n; o++)
        v[o] = (int16_t)(v[o] + w[o]);
}

#endif
