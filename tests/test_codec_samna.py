"""samna event objects <-> arrays, against stand-in classes with samna's attribute names."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec import _impl, samna_events
from speckstream.testing import samna_standin


def test_split_output_by_class_both_implementations():
    ev = samna_standin.speck2f.event
    events = []
    for i in range(5):
        s = ev.Spike(); s.layer, s.feature, s.x, s.y, s.timestamp = i % 3, i, i + 1, i + 2, 1000 + i
        events.append(s)
    nv = ev.NeuronValue(); nv.layer, nv.address, nv.neuron_state = 2, 17, -5
    ro = ev.ReadoutValue(); ro.value = (1 << 20) | 7
    dv = ev.DvsEvent(); dv.x, dv.y, dv.p, dv.timestamp = 3, 4, True, 99
    events += [nv, ro, dv, object()]
    a = samna_events.split_output(events, ev, host_t=555)
    b = samna_events.split_output(events, ev, host_t=555, kernels=_impl.fallback_kernels)
    for name in ("spikes", "neuron_values", "readout", "dvs"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.n_unknown == b.n_unknown == 1
    assert a.spikes["t"].tolist() == [1000, 1001, 1002, 1003, 1004]
    assert a.spikes["core"].tolist() == [0, 1, 2, 0, 1]
    assert a.neuron_values[0]["t"] == 555 and a.neuron_values[0]["vmem"] == -5
    assert a.readout[0]["value"] == (1 << 20) | 7
    assert a.dvs[0]["p"] == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2 ** 32 - 1), st.integers(0, 8), st.integers(0, 1023),
                          st.integers(0, 127), st.integers(0, 127)), max_size=30))
def test_spikes_round_trip_through_samna_objects(rows):
    ev = samna_standin.speck2f.event
    arr = np.array(rows, dtype=[("t", "<u8"), ("core", "u1"), ("c", "<u2"), ("x", "<u2"), ("y", "<u2")])
    spikes = codec.as_events(arr, "spike") if len(rows) else codec.empty("spike")
    objs = samna_events.spikes_to_samna(spikes, ev)
    objs_py = samna_events.spikes_to_samna(spikes, ev, kernels=_impl.fallback_kernels)
    assert [o.__dict__ for o in objs] == [o.__dict__ for o in objs_py]
    back = samna_events.split_output(objs, ev).spikes
    assert np.array_equal(back, spikes)


def test_timestamps_that_do_not_fit_32_bits_are_refused():
    import pytest

    ev = samna_standin.speck2f.event
    sp = codec.spikes(t=[2 ** 32 + 5])
    for kernels in (None, _impl.fallback_kernels):
        with pytest.raises(OverflowError, match="32-bit"):
            samna_events.spikes_to_samna(sp, ev, kernels=kernels)
    assert samna_events.spikes_to_samna(sp, ev, t_offset=2 ** 32)[0].timestamp == 5


def test_read_requests_to_samna():
    ev = samna_standin.speck2f.event
    req = codec.read_requests(4, [0, 1], [2, 3], [1, 1], (2, 8, 8))
    objs = samna_events.read_requests_to_samna(req, ev)
    assert [(o.layer, o.address) for o in objs] == list(zip(req["core"].tolist(), req["address"].tolist()))
    assert [o.__dict__ for o in objs] == [o.__dict__ for o in samna_events.read_requests_to_samna(req, ev, kernels=_impl.fallback_kernels)]


def test_the_fallback_is_a_complete_twin_and_records_match_the_dtypes():
    from speckstream.codec import _fallback, events

    names = {"encode_into", "decode_into", "split_samna_events", "spikes_to_samna", "requests_to_samna"}
    assert names <= set(dir(_fallback))
    if _impl.IMPLEMENTATION == "cython":
        from speckstream.codec import _ccodec

        assert names <= set(dir(_ccodec))
    for rec, dt in ((events.SPIKE_RECORD, events.SPIKE_DTYPE), (events.NV_RECORD, events.NEURON_VALUE_DTYPE)):
        assert rec.itemsize == dt.itemsize
        assert all(rec.fields[n][1] == dt.fields[n][1] for n in dt.names)
