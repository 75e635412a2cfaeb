# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Event-driven inner loop of the software chip (see sim/chip.py for the model and its switches).

State comes in as flat numpy buffers built by ``sim.state.PackedState``:
  params  int32[N_CORES, NPARAM]  per-core geometry, thresholds, destinations and the output decimator (P_*
                            indices below)
  weights int8[...]         per core [C_in, k, k, C_out] (out channel fastest), at w_off[core]
  vmem    int16[...]        per core [H_out, W_out, C_out], at v_off[core]
  biases  int16[...]        per core [C_out], at b_off[core]
Nothing here allocates Python objects per synaptic update.
"""
import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdint cimport int8_t, uint8_t, uint16_t, int16_t, int32_t, uint32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy

from speckstream.codec.events import SPIKE_RECORD

from _records cimport spike_rec

cnp.import_array()

cdef extern from "_pipe.h":
    int SS_PIPE, SS_MSG_SPIKE, SS_MSG_INPUT_END, SS_MSG_STREAM_END
    ctypedef struct ss_msg:
        uint16_t c
        uint16_t x
        uint16_t y
        uint8_t core
        uint8_t kind
    ctypedef struct ss_ring:
        pass
    int ss_ring_init(ss_ring* r, int64_t cap) noexcept nogil
    void ss_ring_free(ss_ring* r) noexcept nogil
    void ss_ring_publish(ss_ring* r) noexcept nogil
    int ss_ring_push(ss_ring* r, const ss_msg* m) noexcept nogil
    int ss_ring_push_word(ss_ring* r, uint64_t word) noexcept nogil
    int ss_ring_next(ss_ring* r, ss_msg* out) noexcept nogil
    int ss_ring_next_word(ss_ring* r, uint64_t* word) noexcept nogil
    void ss_ring_abort(ss_ring* r) noexcept nogil

cdef extern from "_row_kernel.h":
    int SS_ISA_PORTABLE, SS_ISA_AVX2, SS_ISA_AVX512
    int ss_best_isa() noexcept nogil
    int ss_row_update(int isa, int16_t* v, const int8_t* w, int n, int thr_lo, int thr_hi, int rtz,
                      uint16_t* fired, int64_t* clamps, uint64_t* saturated) noexcept nogil
    void ss_add_bound(int isa, int16_t* v, const int8_t* w, int n) noexcept nogil
    ctypedef struct ss_fired:
        uint16_t o
        uint16_t ox
        uint16_t oy
    ctypedef struct ss_core:
        int16_t* vbase
        const int8_t* wbase
        int k, sx, sy, sy_shift, py, px, C_out, H_out, W_out, thr_lo, thr_hi, rtz, isa
    int ss_isa_for(int isa, int thr_lo, int thr_hi) noexcept nogil
    int ss_collect(const uint16_t* fired, int start, int n, int ox, int oy, ss_fired* out) noexcept nogil
    int ss_spike_sx1(const ss_core* g, int c, int x, int y, uint16_t* fired, ss_fired* out, int64_t* clamps,
                     uint64_t* saturated, uint64_t* n_updates) noexcept nogil

#: the inner loop's implementations by name (see _row_kernel.h); BEST_ISA is what this CPU runs
ISAS = {"portable": SS_ISA_PORTABLE, "avx2": SS_ISA_AVX2, "avx512": SS_ISA_AVX512}
_ISA_NAMES = {v: k for k, v in ISAS.items()}
BEST_ISA = _ISA_NAMES[ss_best_isa()]
#: whether this build can run one stream on two threads (GCC / Clang on a POSIX system; sim/pipeline.py)
PIPELINE = bool(SS_PIPE)


cdef int _isa_code(str isa) except -1:
    """The implementation called ``isa``, refusing one this CPU cannot run."""
    if isa not in ISAS:
        raise ValueError(f"unknown kernel {isa!r}; one of {sorted(ISAS)}")
    if ISAS[isa] > ss_best_isa():
        raise ValueError(f"this CPU cannot run the {isa!r} kernel (best here: {BEST_ISA!r})")
    return ISAS[isa]


DEF MAX_FIRED = 16 * 1024  # kernel width (<= 16) x output channels (<= 1024): the lanes of one ky's rows
DEF FIRED_WORDS = MAX_FIRED // 16 + 2  # their fired bits, 16 per word (+ the word ss_collect may read past)

# parameter indices: declared here only (PackedState below writes them, the engine reads them)
cdef enum:
    P_ENABLED = 0
    P_CIN = 1
    P_HIN = 2
    P_WIN = 3
    P_COUT = 4
    P_HOUT = 5
    P_WOUT = 6
    P_K = 7
    P_SY = 8
    P_SX = 9
    P_PY = 10
    P_PX = 11
    P_THR_HI = 12
    P_THR_LO = 13
    P_RTZ = 14
    P_LEAK = 15
    P_MONITOR = 16
    P_D0_CORE = 17
    P_D0_POOL = 18
    P_D0_SHIFT = 19
    P_D1_CORE = 20
    P_D1_POOL = 21
    P_D1_SHIFT = 22
    P_SY_SHIFT = 23  # log2 of the strides (1, 2, 4 or 8)
    P_SX_SHIFT = 24
    P_DECIMATE = 25  # the output decimator: 1 (off) or N, only every N-th fired spike leaves the core
    NPARAM = 26

cdef struct pending:
    uint8_t core
    uint16_t c
    uint16_t x
    uint16_t y

cdef struct vec:
    spike_rec* data
    Py_ssize_t n
    Py_ssize_t cap

cdef struct queue:
    pending* data
    Py_ssize_t head
    Py_ssize_t tail
    Py_ssize_t cap

cdef struct marks:  # a pipelined run: the output vectors' lengths at the end of each input (for the merge)
    int64_t* data
    Py_ssize_t n
    Py_ssize_t cap

cdef int marks_push(marks* m, int64_t out_n, int64_t ro_n) noexcept nogil:
    cdef int64_t* nd
    if m.n + 2 > m.cap:
        nd = <int64_t*>realloc(m.data, (m.cap * 2 + 1024) * sizeof(int64_t))
        if nd == NULL:
            return -1
        m.data = nd
        m.cap = m.cap * 2 + 1024
    m.data[m.n] = out_n
    m.data[m.n + 1] = ro_n
    m.n += 2
    return 0

cdef int vec_push(vec* v, uint64_t t, uint8_t core, uint16_t c, uint16_t x, uint16_t y) noexcept nogil:
    cdef spike_rec* nd
    if v.n == v.cap:
        nd = <spike_rec*>realloc(v.data, (v.cap * 2 + 1024) * sizeof(spike_rec))
        if nd == NULL:
            return -1
        v.data = nd
        v.cap = v.cap * 2 + 1024
    v.data[v.n].t = t
    v.data[v.n].core = core
    v.data[v.n]._pad = 0
    v.data[v.n].c = c
    v.data[v.n].x = x
    v.data[v.n].y = y
    v.n += 1
    return 0

cdef int vec_extend(vec* v, const spike_rec* src, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Append src[a:b] (one reallocation at most)."""
    cdef spike_rec* nd
    cdef Py_ssize_t cap
    if b <= a:
        return 0
    if v.n + (b - a) > v.cap:
        cap = max(v.cap * 2 + 1024, v.n + (b - a))
        nd = <spike_rec*>realloc(v.data, cap * sizeof(spike_rec))
        if nd == NULL:
            return -1
        v.data = nd
        v.cap = cap
    memcpy(&v.data[v.n], &src[a], (b - a) * sizeof(spike_rec))
    v.n += b - a
    return 0

cdef int q_reserve(queue* q, Py_ssize_t n) noexcept nogil:
    """Room for n more pending events (so a loop can then write them without checking)."""
    cdef pending* nd
    cdef Py_ssize_t cap
    if q.tail + n > q.cap:
        cap = max(q.cap * 2 + 1024, q.tail + n)
        nd = <pending*>realloc(q.data, cap * sizeof(pending))
        if nd == NULL:
            return -1
        q.data = nd
        q.cap = cap
    return 0


@cython.final  # direct (inlinable) calls between convolve, fire and drain instead of through the vtable
cdef class Core:
    """Simulation engine over packed state; one per ChipSimulator."""
    cdef int32_t[:, ::1] params
    cdef int8_t[::1] weights
    cdef int64_t[::1] w_off
    cdef int16_t[::1] vmem
    cdef int64_t[::1] v_off
    cdef int16_t[::1] biases
    cdef int64_t[::1] b_off
    cdef int32_t[::1] decimated  # per core, spikes fired since the decimator last passed one (shared state)
    cdef public bint leak_fires
    cdef int readout_id  # the readout layer's id on the event bus (ChipSpec.readout_id)
    cdef public bint drop_off_map
    cdef public unsigned long long n_off_map
    cdef long long[::1] clamps
    cdef public long long max_cascade
    cdef unsigned long long core_updates[16]  # synaptic updates per core (n_updates is their sum)
    cdef unsigned long long core_spikes[16]  # spikes that left each core (after its decimator)
    cdef public unsigned long long n_saturated
    cdef public unsigned long long n_ticks
    cdef vec out
    cdef vec readout
    cdef queue q
    cdef public object clamps_arr  # floor clamps per core (int64[9])
    cdef uint16_t fired[FIRED_WORDS]  # which neurons of the rows being updated fired, as bits (_row_kernel.h)
    cdef ss_fired* fired_list  # the neurons one spike made fire, in order (ss_spike_sx1); k*k*C_out at most
    cdef int isa_code  # which inner loop (_row_kernel.h)
    cdef ss_core geo[16]  # per core: what a spike into it needs (ss_spike_sx1); built once, params are fixed
    # a pipelined run (run_pipelined): the cores this engine updates (a bit each; the rest go to `ring`, the other
    # thread's), where each input's outputs end, and the stage's result
    cdef uint32_t owned
    cdef ss_ring* ring
    cdef unsigned long long n_handed  # spikes handed to the other stage so far (this run)
    cdef marks mk
    cdef int stage_rc

    def __cinit__(self):
        self.out.data = NULL; self.out.n = 0; self.out.cap = 0
        self.readout.data = NULL; self.readout.n = 0; self.readout.cap = 0
        self.q.data = NULL; self.q.head = 0; self.q.tail = 0; self.q.cap = 0
        self.mk.data = NULL; self.mk.n = 0; self.mk.cap = 0
        self.fired_list = NULL
        self.owned = 0xFFFF
        self.ring = NULL

    def __dealloc__(self):
        free(self.out.data)
        free(self.readout.data)
        free(self.q.data)
        free(self.mk.data)
        free(self.fired_list)

    def __init__(self, int32_t[:, ::1] params, int8_t[::1] weights, int64_t[::1] w_off,
                 int16_t[::1] vmem, int64_t[::1] v_off, int16_t[::1] biases, int64_t[::1] b_off,
                 int32_t[::1] decimated, bint leak_fires=False, long long max_cascade=100_000_000,
                 bint drop_off_map=True, int readout_id=12, str isa=None):
        self.isa_code = ss_best_isa() if isa is None else _isa_code(isa)
        self.params = params
        self.readout_id = readout_id
        self.drop_off_map = drop_off_map
        self.n_off_map = 0
        self.clamps_arr = np.zeros(params.shape[0], np.int64)
        self.clamps = self.clamps_arr
        self.weights = weights
        self.w_off = w_off
        self.vmem = vmem
        self.v_off = v_off
        self.biases = biases
        self.b_off = b_off
        self.decimated = decimated
        self.leak_fires = leak_fires
        self.max_cascade = max_cascade
        self.core_updates[:] = [0] * 16
        self.core_spikes[:] = [0] * 16
        self.n_saturated = 0
        self.n_ticks = 0
        cdef Py_ssize_t most = 1, core
        for core in range(params.shape[0]):
            most = max(most, <Py_ssize_t>params[core, P_K] * params[core, P_K] * params[core, P_COUT])
        self.fired_list = <ss_fired*>malloc(most * sizeof(ss_fired))
        if self.fired_list == NULL:
            raise MemoryError("simulator could not allocate its fired-neuron list")
        if params.shape[0] > 16:
            raise ValueError(f"at most 16 cores, got {params.shape[0]}")
        cdef int32_t* p
        for core in range(params.shape[0]):
            p = &params[core, 0]
            self.geo[core].vbase = &self.vmem[v_off[core]] if v_off[core] < vmem.shape[0] else NULL
            self.geo[core].wbase = &self.weights[w_off[core]] if w_off[core] < weights.shape[0] else NULL
            self.geo[core].k = p[P_K]
            self.geo[core].sx = p[P_SX]
            self.geo[core].sy = p[P_SY]
            self.geo[core].sy_shift = p[P_SY_SHIFT]
            self.geo[core].py = p[P_PY]
            self.geo[core].px = p[P_PX]
            self.geo[core].C_out = p[P_COUT]
            self.geo[core].H_out = p[P_HOUT]
            self.geo[core].W_out = p[P_WOUT]
            self.geo[core].thr_lo = p[P_THR_LO]
            self.geo[core].thr_hi = p[P_THR_HI]
            self.geo[core].rtz = p[P_RTZ]
            self.geo[core].isa = ss_isa_for(self.isa_code, p[P_THR_LO], p[P_THR_HI])

    cdef int fire_all(self, uint64_t t, int core, ss_fired* fl, int nf) noexcept nogil:
        """Neurons of a core fired (in this order): for each that the output decimator passes (every N-th, a
        counter per core), a monitor copy, then one pending event per enabled destination (pooled: coordinates
        shifted by log2 of the pooling). The core's destinations are read once per call - the hot path calls it
        once per input spike."""
        cdef int32_t* p = &self.params[core, 0]
        cdef int i, d, nd = 0, px, py, o
        cdef int decimate = p[P_DECIMATE]
        cdef int dcore[2]
        cdef int pool[2]
        cdef int shift[2]
        cdef int win[2]
        cdef int hin[2]
        cdef bint monitor = p[P_MONITOR]
        for d in range(2):
            if p[P_D0_CORE + 3 * d] < 0:
                continue
            dcore[nd] = p[P_D0_CORE + 3 * d]
            pool[nd] = p[P_D0_POOL + 3 * d]
            shift[nd] = p[P_D0_SHIFT + 3 * d]
            if dcore[nd] != self.readout_id and self.drop_off_map:
                win[nd] = self.params[dcore[nd], P_WIN]
                hin[nd] = self.params[dcore[nd], P_HIN]
            else:
                win[nd] = hin[nd] = 1 << 30
            nd += 1
        if q_reserve(&self.q, <Py_ssize_t>nf * nd) < 0:
            return -1
        for i in range(nf):
            if decimate > 1:
                self.decimated[core] += 1
                if self.decimated[core] < decimate:
                    continue
                self.decimated[core] = 0
            self.core_spikes[core] += 1
            o = fl[i].o
            if monitor and vec_push(&self.out, t, <uint8_t>core, <uint16_t>o, fl[i].ox, fl[i].oy) < 0:
                return -1
            for d in range(nd):
                px = fl[i].ox >> pool[d]
                py = fl[i].oy >> pool[d]
                if dcore[d] == self.readout_id:
                    if vec_push(&self.readout, t, <uint8_t>self.readout_id, <uint16_t>(o + shift[d]),
                                <uint16_t>px, <uint16_t>py) < 0:
                        return -1
                elif px >= win[d] or py >= hin[d]:
                    # a pooled spike past the destination's map (odd-sized source): torch / sinabs drop it
                    self.n_off_map += 1
                elif not (self.owned >> dcore[d]) & 1:  # the other stage's core (run_pipelined)
                    if self.hand_over(dcore[d], o + shift[d], px, py) < 0:
                        return -3
                else:
                    self.q.data[self.q.tail].core = <uint8_t>dcore[d]
                    self.q.data[self.q.tail].c = <uint16_t>(o + shift[d])
                    self.q.data[self.q.tail].x = <uint16_t>px
                    self.q.data[self.q.tail].y = <uint16_t>py
                    self.q.tail += 1
        return 0

    cdef int fire(self, uint64_t t, int core, int o, int ox, int oy) noexcept nogil:
        """One neuron fired (the slow clock's leak): fire_all with a list of one, so routing lives in one place."""
        cdef ss_fired one
        one.o = <uint16_t>o
        one.ox = <uint16_t>ox
        one.oy = <uint16_t>oy
        return self.fire_all(t, core, &one, 1)

    cdef int convolve(self, uint64_t t, int core, int c, int x, int y) noexcept nogil:
        """One spike into one core: event-driven convolution with per-update threshold test.

        Weights are stored [in, ky, k-1-kx, out] (kx flipped), so with x-stride 1 the rows a spike reaches
        for one ky (consecutive output pixels) are one contiguous block in both weights and vmem: one
        C call (ss_spike_sx1) updates them all, vectorised, and lists the neurons that fired in the scalar
        loop's order (ky, then kx ascending, then channel ascending); fire() only queues, so updating first
        and firing after changes nothing. Other x-strides take one kernel call per reached row."""
        cdef int64_t* clamps = <int64_t*>&self.clamps[core]
        cdef uint64_t* sat = <uint64_t*>&self.n_saturated
        cdef int nf
        if self.geo[core].sx == 1:
            nf = ss_spike_sx1(&self.geo[core], c, x, y, self.fired, self.fired_list, clamps, sat,
                              <uint64_t*>&self.core_updates[core])
            return self.fire_all(t, core, self.fired_list, nf) if nf else 0
        cdef int32_t* p = &self.params[core, 0]
        cdef int k = p[P_K], sy = p[P_SY], sx = p[P_SX], py = p[P_PY], px = p[P_PX]
        cdef int sys = p[P_SY_SHIFT], sxs = p[P_SX_SHIFT]
        cdef int C_out = p[P_COUT], H_out = p[P_HOUT], W_out = p[P_WOUT]
        cdef int thr_hi = p[P_THR_HI], thr_lo = p[P_THR_LO], rtz = p[P_RTZ]
        cdef int ky, kx, ny, nx, oy, ox, o, rc
        cdef int8_t* wrow
        cdef int16_t* vrow
        cdef int8_t* wbase = &self.weights[self.w_off[core]]
        cdef int16_t* vbase = &self.vmem[self.v_off[core]]
        for ky in range(k):
            ny = y + py - ky
            if ny < 0:
                break  # ny only decreases with ky
            if ny & (sy - 1):  # strides are powers of two
                continue
            oy = ny >> sys
            if oy >= H_out:
                continue
            for kx in range(k):
                nx = x + px - kx
                if nx < 0:
                    break
                if nx & (sx - 1):
                    continue
                ox = nx >> sxs
                if ox >= W_out:
                    continue
                wrow = wbase + ((c * k + ky) * k + (k - 1 - kx)) * C_out
                vrow = vbase + (oy * W_out + ox) * C_out
                self.core_updates[core] += C_out
                if ss_row_update(self.isa_code, vrow, wrow, C_out, thr_lo, thr_hi, rtz, self.fired, clamps, sat):
                    nf = ss_collect(self.fired, 0, C_out, ox, oy, self.fired_list)
                    rc = self.fire_all(t, core, self.fired_list, nf)
                    if rc < 0:
                        return rc
        return 0

    cdef int hand_over(self, int core, int c, int x, int y) noexcept nogil:
        cdef ss_msg m
        m.kind = SS_MSG_SPIKE
        m.core = <uint8_t>core
        m.c = <uint16_t>c
        m.x = <uint16_t>x
        m.y = <uint16_t>y
        self.n_handed += 1
        return ss_ring_push(self.ring, &m)

    cdef int drain(self, uint64_t t) noexcept nogil:
        cdef long long steps = 0
        return self.drain_counted(t, &steps)

    cdef int drain_counted(self, uint64_t t, long long* counted) noexcept nogil:
        """Deliver pending spikes (FIFO) until the network is quiet, counting the cascade's steps from
        ``counted`` (the other stage's, in a pipelined run). -2: did not go quiet."""
        cdef pending ev
        cdef int rc
        cdef long long steps = counted[0]
        while self.q.head < self.q.tail:
            ev = self.q.data[self.q.head]
            self.q.head += 1
            rc = self.convolve(t, ev.core, ev.c, ev.x, ev.y)
            if rc < 0:
                return rc
            steps += 1
            if steps > self.max_cascade:
                self.q.head = 0; self.q.tail = 0
                return -2
        self.q.head = 0
        self.q.tail = 0
        counted[0] = steps
        return 0

    cdef int tick(self, uint64_t t) noexcept nogil:
        """One slow-clock tick: add each leaking core's bias to all its neurons."""
        cdef int core, i, o, v, C_out, n, thr_hi, thr_lo, rtz, oy, ox
        cdef int32_t* p
        cdef int16_t* vbase
        cdef int16_t* bias
        self.n_ticks += 1
        for core in range(self.params.shape[0]):
            p = &self.params[core, 0]
            if not p[P_ENABLED] or not p[P_LEAK]:
                continue
            C_out = p[P_COUT]
            n = p[P_HOUT] * p[P_WOUT]
            thr_hi = p[P_THR_HI]; thr_lo = p[P_THR_LO]; rtz = p[P_RTZ]
            vbase = &self.vmem[self.v_off[core]]
            bias = &self.biases[self.b_off[core]]
            for i in range(n):
                for o in range(C_out):
                    v = vbase[i * C_out + o] + bias[o]
                    if v < thr_lo:
                        v = thr_lo
                    if self.leak_fires and v >= thr_hi:
                        v = 0 if rtz else v - thr_hi
                        oy = i // p[P_WOUT]
                        ox = i - oy * p[P_WOUT]
                        if self.fire(t, core, o, ox, oy) < 0:
                            return -1
                    if v > 32767:
                        v = 32767
                        self.n_saturated += 1
                    vbase[i * C_out + o] = <int16_t>v
        if self.leak_fires:
            return self.drain(t)
        return 0

    def run(self, spikes, unsigned long long now, unsigned long long next_tick,
            unsigned long long tick_period, unsigned long long until):
        """Process input spikes (SPIKE_DTYPE, in order) and slow-clock ticks up to ``until`` (µs).

        Each spike is released at max(now, t) (held until its timestamp, immediately if already past);
        ticks due at or before a release run first. Returns (now, next_tick). Outputs accumulate and are
        collected with :meth:`take_outputs`.
        """
        cdef spike_rec[:] sp = spikes.view(np.uint8).view(dtype=SPIKE_RECORD) if len(spikes) else _EMPTY
        cdef Py_ssize_t i, n = sp.shape[0]
        cdef int rc = 0
        cdef uint64_t t
        cdef Py_ssize_t bad = -1
        with nogil:
            for i in range(n):
                t = sp[i].t
                if t < now:
                    t = now
                while tick_period and next_tick <= t:
                    rc = self.tick(next_tick)
                    next_tick += tick_period
                    if rc < 0:
                        break
                if rc < 0:
                    break
                now = t
                if self.off_input(&sp[i]):
                    bad = i
                    break
                rc = self.convolve(now, sp[i].core, sp[i].c, sp[i].x, sp[i].y)
                if rc == 0:
                    rc = self.drain(now)
                if rc < 0:
                    break
            if rc == 0 and bad < 0:
                while tick_period and next_tick <= until:
                    rc = self.tick(next_tick)
                    next_tick += tick_period
                    if rc < 0:
                        break
                if until > now:
                    now = until
        self._raise_for(rc)
        return now, next_tick, bad

    cdef bint off_input(self, const spike_rec* s) noexcept nogil:
        """An input spike into a core that is not configured, or off its input map."""
        cdef int32_t* p
        if s.core >= self.params.shape[0]:
            return True
        p = &self.params[s.core, 0]
        return not p[P_ENABLED] or s.c >= p[P_CIN] or s.x >= p[P_WIN] or s.y >= p[P_HIN]

    def _raise_for(self, int rc):
        """The error of a run's return code (0: none)."""
        if rc == -1 or rc == -3:
            raise MemoryError("simulator ran out of memory for pending events")
        if rc == -2:
            raise RuntimeError(f"network did not go quiet after {self.max_cascade} internal events "
                               "(a loop between cores?)")
        if rc == -4:
            raise ValueError("run_pipelined: an input spike addresses a core of the second stage")

    cdef int stage_a(self, spike_rec[:] sp, uint64_t* now, Py_ssize_t* bad) noexcept nogil:
        """The first stage of a pipelined run: each input into its cores (and theirs, FIFO) as run() does - no
        slow-clock tick falls in a pipelined run - handing spikes for the other stage's cores to the ring, then
        closing an input that handed some over with its release time and cascade steps (and marking where its
        outputs end here, for the merge; the second stage marks the same inputs)."""
        cdef unsigned long long handed = self.n_handed
        cdef Py_ssize_t i
        cdef int rc = 0
        cdef uint64_t t
        cdef long long steps
        cdef ss_msg m
        for i in range(sp.shape[0]):
            t = sp[i].t
            if t < now[0]:
                t = now[0]
            now[0] = t
            if self.off_input(&sp[i]):
                bad[0] = i
                break
            if not (self.owned >> sp[i].core) & 1:  # the caller sends inputs only into this stage's cores
                return -4
            steps = 0
            rc = self.convolve(t, sp[i].core, sp[i].c, sp[i].x, sp[i].y)
            if rc == 0:
                rc = self.drain_counted(t, &steps)
            if rc < 0:
                return rc
            if self.n_handed == handed:  # nothing for the second stage: it has nothing to do for this input
                continue
            handed = self.n_handed
            if marks_push(&self.mk, self.out.n, self.readout.n) < 0:
                return -1
            m.kind = SS_MSG_INPUT_END
            if (ss_ring_push(self.ring, &m) < 0 or ss_ring_push_word(self.ring, t) < 0
                    or ss_ring_push_word(self.ring, <uint64_t>steps) < 0):
                return -3
        m.kind = SS_MSG_STREAM_END
        if ss_ring_push(self.ring, &m) < 0:
            return -3
        ss_ring_publish(self.ring)
        return 0

    cdef int stage_b(self, ss_ring* r) noexcept nogil:
        """The second stage: the first stage's spikes into this stage's cores, queued in order, each input's
        cascade drained at its end (with its time and the steps the first stage counted)."""
        cdef ss_msg m
        cdef uint64_t t, steps_word
        cdef long long steps
        cdef int rc
        while True:
            if ss_ring_next(r, &m) < 0:
                return -3
            if m.kind == SS_MSG_SPIKE:
                if q_reserve(&self.q, 1) < 0:
                    return -1
                self.q.data[self.q.tail].core = m.core
                self.q.data[self.q.tail].c = m.c
                self.q.data[self.q.tail].x = m.x
                self.q.data[self.q.tail].y = m.y
                self.q.tail += 1
            elif m.kind == SS_MSG_INPUT_END:
                if ss_ring_next_word(r, &t) < 0 or ss_ring_next_word(r, &steps_word) < 0:
                    return -3
                steps = <long long>steps_word
                rc = self.drain_counted(t, &steps)
                if rc == 0 and marks_push(&self.mk, self.out.n, self.readout.n) < 0:
                    rc = -1
                if rc < 0:
                    return rc
            else:
                return 0

    def _run_stage_b(self, size_t ring_address):
        """The second stage's thread body (its result in ``stage_rc``)."""
        cdef ss_ring* r = <ss_ring*>ring_address
        with nogil:
            self.stage_rc = self.stage_b(r)
            if self.stage_rc < 0:
                ss_ring_abort(r)

    def run_pipelined(self, Core second, spikes, unsigned long long now, unsigned int owned):
        """Process input spikes as :meth:`run` does (no slow-clock tick may fall among them), on two threads: this
        engine updates the cores in the bitmask ``owned`` - the first layers of a chain, which every input
        enters - on the calling thread, ``second`` (over the same state) the rest on another. Every core takes
        its spikes in the order the single-thread engine gives them (in a chain, a layer's input is the layer
        before's output, in order), and each input's monitored spikes come out in the same order: this
        stage's, then the second's (the single-thread FIFO finishes a layer before it starts the next).
        Returns (now, bad); outputs are collected with :meth:`take_outputs` as after run()."""
        import threading

        cdef spike_rec[:] sp = spikes.view(np.uint8).view(dtype=SPIKE_RECORD) if len(spikes) else _EMPTY
        cdef ss_ring ring
        cdef int rc = 0
        cdef Py_ssize_t bad = -1
        cdef int64_t base_out = self.out.n, base_ro = self.readout.n
        if ss_ring_init(&ring, 1 << 16) < 0:
            raise MemoryError("simulator could not allocate its pipeline")
        self.mk.n = second.mk.n = 0
        second.out.n = second.readout.n = 0
        second.stage_rc = 0
        self.owned, second.owned, self.ring = owned, 0xFFFF & ~owned, &ring
        worker = threading.Thread(target=second._run_stage_b, args=(<size_t>&ring,), daemon=True,
                                  name="speckstream-sim-stage-2")
        try:
            worker.start()
            with nogil:
                rc = self.stage_a(sp, &now, &bad)
                if rc < 0:
                    ss_ring_abort(&ring)
            worker.join()
        finally:
            self.owned, second.owned, self.ring = 0xFFFF, 0xFFFF, NULL
            ss_ring_free(&ring)
        if rc == 0 or rc == -3:
            rc = second.stage_rc if second.stage_rc < 0 else rc
        if rc == 0 and self._merge(second, base_out, base_ro) < 0:
            rc = -1
        self._raise_for(rc)
        return now, bad

    cdef int _merge(self, Core second, int64_t base_out, int64_t base_ro) noexcept:
        """This engine's outputs and the second stage's, input by input (this stage's first), after the outputs
        that were waiting before the run."""
        cdef vec merged[2]
        cdef vec* mine[2]
        cdef vec* theirs[2]
        cdef int64_t base[2]
        cdef Py_ssize_t g, k, a0, b0
        cdef int rc
        mine[0], mine[1] = &self.out, &self.readout
        theirs[0], theirs[1] = &second.out, &second.readout
        base[0], base[1] = base_out, base_ro
        for k in range(2):
            if theirs[k].n == 0:  # nothing to interleave
                continue
            merged[k].data = NULL
            merged[k].n = merged[k].cap = 0
            rc = vec_extend(&merged[k], mine[k].data, 0, base[k])
            a0, b0 = base[k], 0
            g = 0
            while rc == 0 and g < self.mk.n:
                rc = vec_extend(&merged[k], mine[k].data, a0, self.mk.data[g + k])
                if rc == 0:
                    rc = vec_extend(&merged[k], theirs[k].data, b0, second.mk.data[g + k])
                a0, b0 = self.mk.data[g + k], second.mk.data[g + k]
                g += 2
            if rc == 0:  # after the last input that handed spikes over
                rc = vec_extend(&merged[k], mine[k].data, a0, mine[k].n)
            if rc < 0:
                free(merged[k].data)
                return -1
            free(mine[k].data)
            mine[k][0] = merged[k]
            theirs[k].n = 0
        return 0

    @property
    def n_updates(self) -> int:
        """Synaptic updates so far, all cores."""
        cdef int c
        cdef unsigned long long total = 0
        for c in range(16):
            total += self.core_updates[c]
        return total

    def updates_per_core(self):
        """Synaptic updates so far per core (int64[16])."""
        return np.array([self.core_updates[c] for c in range(16)], np.int64)

    def spikes_per_core(self):
        """Spikes that have left each core so far, after its output decimator (int64[16])."""
        return np.array([self.core_spikes[c] for c in range(16)], np.int64)

    @property
    def isa(self) -> str:
        """Name of the inner loop this engine runs ("avx512", "avx2" or "portable")."""
        return _ISA_NAMES[self.isa_code]

    def take_outputs(self):
        """Return and clear (monitored spikes, spikes sent to the readout layer) as SPIKE_DTYPE arrays."""
        return self._take(&self.out), self._take(&self.readout)

    cdef object _take(self, vec* v):
        arr = np.empty(v.n, dtype=SPIKE_RECORD)
        cdef spike_rec[:] dst
        cdef Py_ssize_t i
        if v.n:
            dst = arr
            for i in range(v.n):
                dst[i] = v.data[i]
        v.n = 0
        return arr


_EMPTY = np.zeros(0, dtype=SPIKE_RECORD)


N_CORES = 9


class PackedState:
    """Flat parameter, weight, bias and vmem buffers for all 9 cores."""

    def __init__(self, cfg: ChipConfig):
        self.params = np.zeros((N_CORES, NPARAM), dtype=np.int32)
        self.params[:, P_D0_CORE] = -1
        self.params[:, P_D1_CORE] = -1
        self.params[:, P_DECIMATE] = 1
        self.decimated = np.zeros(N_CORES, np.int32)  # the decimators' counters: state, reset with the vmem
        w_parts, v_parts, b_parts = [], [], []
        self.w_off = np.zeros(N_CORES, np.int64)
        self.v_off = np.zeros(N_CORES, np.int64)
        self.b_off = np.zeros(N_CORES, np.int64)
        wo = vo = bo = 0
        self.shapes: dict[int, tuple[int, int, int]] = {}
        for c in range(N_CORES):
            self.w_off[c], self.v_off[c], self.b_off[c] = wo, vo, bo
            cc = cfg.cores.get(c)
            if cc is None:
                continue
            p = self.params[c]
            Ci, Hi, Wi = cc.input_shape
            Co, Ho, Wo = cc.output_shape
            p[[P_ENABLED, P_CIN, P_HIN, P_WIN, P_COUT, P_HOUT, P_WOUT, P_K]] = [1, Ci, Hi, Wi, Co, Ho, Wo,
                                                                                 cc.kernel_size]
            p[[P_SY, P_SX, P_PY, P_PX]] = [*cc.stride, *cc.padding]
            # strides (1, 2, 4, 8) and poolings (1, 2, 4) as shifts: validate() has refused anything else
            p[[P_SY_SHIFT, P_SX_SHIFT]] = [s.bit_length() - 1 for s in cc.stride]
            p[[P_THR_HI, P_THR_LO, P_RTZ, P_LEAK, P_MONITOR]] = [cc.threshold_high, cc.threshold_low,
                                                                 cc.return_to_zero, cc.leak_enable, cc.monitor]
            p[P_DECIMATE] = cc.decimator
            for j, d in enumerate(cc.destinations[:2]):
                p[P_D0_CORE + 3 * j: P_D0_CORE + 3 * j + 3] = [d.core, d.pooling.bit_length() - 1, d.feature_shift]
            # [in, ky, k-1-kx, out]: kx flipped, so one ky's rows are contiguous (see Core.convolve)
            w = np.ascontiguousarray(cc.weights[:, :, :, ::-1].transpose(1, 2, 3, 0)).ravel()
            v = np.ascontiguousarray(cc.initial_vmem.transpose(1, 2, 0)).ravel()  # [y, x, out]
            w_parts.append(w)
            v_parts.append(v)
            b_parts.append(cc.biases.astype(np.int16))
            wo += w.size
            vo += v.size
            bo += Co
            self.shapes[c] = (Co, Ho, Wo)
        self.weights = np.concatenate(w_parts) if w_parts else np.zeros(0, np.int8)
        self.initial_vmem = np.concatenate(v_parts) if v_parts else np.zeros(0, np.int16)
        self.vmem = self.initial_vmem.copy()
        self.biases = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int16)

    def vmem_view(self, core: int) -> np.ndarray:
        """Core's vmem as a [C, H, W] view (writable) of the engine's buffer."""
        C, H, W = self.shapes[core]
        start = self.v_off[core]
        return self.vmem[start:start + C * H * W].reshape(H, W, C).transpose(2, 0, 1)



def measure_kernels(int row_len, long long updates=50_000_000, int thr_hi=32767, int thr_lo=-32768,
                    str isa=None):
    """Updates/s of the inner-loop kernel and of the bound (a widening int8 -> int16 add over the same bytes)
    on rows of ``row_len`` neurons cycling through 32 KiB of vmem (an L1/L2-resident core), measured now on
    this machine. The default thresholds never fire or clamp: the arithmetic alone."""
    import time
    if row_len < 1 or row_len > MAX_FIRED:
        raise ValueError(f"row_len must be in 1..{MAX_FIRED}")
    cdef int code = ss_best_isa() if isa is None else _isa_code(isa)
    cdef int rows = max(1, 16384 // row_len)
    vm = np.zeros(rows * row_len, np.int16)
    wt = np.random.default_rng(0).integers(-3, 4, rows * row_len).astype(np.int8)
    cdef int16_t[::1] v = vm
    cdef int8_t[::1] w = wt
    cdef uint16_t[FIRED_WORDS] fired
    cdef int64_t clamps = 0
    cdef uint64_t sat = 0
    cdef long long calls = max(1, updates // row_len), i
    # rows taken in turn by a running offset: a modulo per call (a 64-bit division) cost more than the add over a
    # 96-wide row it was timing, and made the bound as slow as the division
    cdef int r = 0, end = rows * row_len
    t0 = time.perf_counter()
    with nogil:
        for i in range(calls):
            ss_row_update(code, &v[r], &w[r], row_len, thr_lo, thr_hi, 0, fired, &clamps, &sat)
            r += row_len
            if r == end:
                r = 0
    t_kernel = time.perf_counter() - t0
    r = 0
    t0 = time.perf_counter()
    with nogil:
        for i in range(calls):
            ss_add_bound(code, &v[r], &w[r], row_len)
            r += row_len
            if r == end:
                r = 0
    t_bound = time.perf_counter() - t0
    return calls * row_len / t_kernel, calls * row_len / t_bound


def row_update(vmem, weights, int thr_lo, int thr_hi, bint rtz, str isa=None, int pixel=0):
    """One spike's update of a row with a chosen inner loop, for tests: updates ``vmem`` (int16, in place)
    by ``weights`` (int8, same length <= 16384) and returns (fired lanes in the order the engine would emit
    them, floor clamps, saturations). The row is read back as pixels of ``pixel`` channels (0: one pixel),
    first to last, each channel ascending: the lanes come back ascending when the bits and their collection
    (ss_collect) agree with the kernel's count."""
    cdef int code = ss_best_isa() if isa is None else _isa_code(isa)
    cdef int16_t[::1] v = vmem
    cdef const int8_t[::1] w = weights
    cdef int n = <int>v.shape[0]
    if n != w.shape[0] or n > MAX_FIRED:
        raise ValueError(f"vmem and weights must have one length <= {MAX_FIRED}")
    cdef int width = pixel if pixel > 0 else max(n, 1)
    cdef uint16_t[FIRED_WORDS] bits
    cdef ss_fired* found = <ss_fired*>malloc(max(n, 1) * sizeof(ss_fired))
    if found == NULL:
        raise MemoryError()
    cdef int64_t clamps = 0
    cdef uint64_t sat = 0
    cdef int nf = 0, m = 0, b, i
    try:
        if n:
            nf = ss_row_update(code, &v[0], &w[0], n, thr_lo, thr_hi, rtz, bits, &clamps, &sat)
        for b in range(0, n, width):
            m += ss_collect(bits, b, min(width, n - b), b // width, 0, found + m)
        lanes = np.array([found[i].ox * width + found[i].o for i in range(m)], np.int64)
    finally:
        free(found)
    if nf != m:
        raise AssertionError(f"kernel counted {nf} fired, collected {m}")
    return lanes, int(clamps), int(sat)


def dvs_spikes(events, int pool_y, int pool_x, int top, int bottom, int left, int right, bint merge_polarities,
               bint flip_x, bint flip_y, bint swap_xy, bint on_channel, bint off_channel, destinations):
    """The DVS stage (sim/dvs.py: dvs_to_spikes, whose numpy version is the reference) in one pass: DvsEvents
    (DVS_EVENT_DTYPE, on the sensor, checked) -> polarity select / merge -> pooling -> crop -> mirrors -> swap,
    one spike per destination core (in destination order) per event that passes; SPIKE_RECORD."""
    cdef const uint64_t[:] t = events["t"]
    cdef const uint16_t[:] xs = events["x"]
    cdef const uint16_t[:] ys = events["y"]
    cdef const uint8_t[:] ps = events["p"]
    cdef Py_ssize_t n = t.shape[0], i, m = 0
    cdef int nd = len(destinations), j, x, y, c, w = right - left, h = bottom - top, tmp
    cdef uint8_t dest[2]
    if nd > 2:
        raise ValueError(f"a DVS stage has at most 2 destinations, got {nd}")
    for j in range(nd):
        dest[j] = <uint8_t>destinations[j]
    out = np.empty(n * nd, dtype=SPIKE_RECORD)
    cdef spike_rec[:] o = out
    with nogil:
        for i in range(n):
            if not (on_channel if ps[i] == 1 else off_channel):
                continue
            c = 0 if merge_polarities else ps[i]
            x = xs[i] // pool_x
            y = ys[i] // pool_y
            if y < top or y >= bottom or x < left or x >= right:
                continue
            x -= left
            y -= top
            if flip_x:
                x = w - 1 - x
            if flip_y:
                y = h - 1 - y
            if swap_xy:
                tmp = x
                x = y
                y = tmp
            for j in range(nd):
                o[m].t = t[i]
                o[m].core = dest[j]
                o[m]._pad = 0
                o[m].c = <uint16_t>c
                o[m].x = <uint16_t>x
                o[m].y = <uint16_t>y
                m += 1
    return out[:m]
