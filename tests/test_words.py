"""write_words against a NumPy bool model, spans of one to several words."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pageflags._words import SPAN_WORDS, write_words


@given(st.lists(st.tuples(st.integers(0, 319), st.integers(1, 2 * 64 * SPAN_WORDS),
                          st.booleans()), max_size=20))
def test_write_words_matches_a_bool_model(writes):
    memory = bytearray(40)
    words = memoryview(memory).cast("Q")
    model = np.zeros(320, dtype=bool)
    for lo, length, value in writes:
        hi = min(lo + length, 320)
        before = int(model.sum())
        changed = write_words(words, lo, hi, value)
        model[lo:hi] = value
        assert changed == abs(int(model.sum()) - before)
        bits = np.unpackbits(np.frombuffer(bytes(memory), dtype=np.uint8),
                             bitorder="little")
        if np.little_endian:
            np.testing.assert_array_equal(bits.astype(bool), model)
        got = [words[i] >> b & 1 == 1 for i in range(5) for b in range(64)]
        assert got == model.tolist()
