"""A few rows of Y⁻¹U, without solving for the whole of it: what a low-rank update reads.

A layer's Woodbury update needs W = Y⁻¹U (U: the changed devices' incidence vectors) only at a few
hundred of its unknowns: the source nodes, the sense and summing nodes (the transfer matrix) and the
changed devices' terminals (the capacitance matrix). SuperLU factorises the layer's ordered matrix
as Y = L·U with both permutations the identity (symmetric mode and the natural order on a matrix
already in nested-dissection order; Y is diagonally dominant, so no pivot leaves the diagonal:
checked, and where one did the layer solves in full). Then

    (Y⁻¹u)[r] = gᵣᵀ (L⁻¹u),   gᵣ = U⁻ᵀe_r,

two forward substitutions whose right-hand sides have one or two nonzeros, each reaching only a part
of its triangle (the unknowns above it in the elimination tree). On the 256×256 tile (197 376
unknowns) a gᵣ has ~1000 nonzeros; the gᵣ of the fixed rows are computed once per factorisation and
kept sparse. SciPy has no substitution that skips what a sparse right-hand side does not reach
(``spsolve_triangular`` took 0.12 s for 16 columns, more than SuperLU's full solve): it is a few
lines of C (``triangular.c``), built by ``circuitnn.native``; without a compiler the layer solves in
full, as before.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path

import numpy as np
from scipy import sparse

from .. import native

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("triangular.c")
FALLBACK = "full solves for low-rank updates"
MAX_INDEX = 2**31 - 1   # the kernel's column pointers and row indices are 32-bit
BLOCK = 16   # right-hand sides per substitution: the block stays a few MB, each factor entry read once


@functools.cache
def _kernel():
    path = native.build(SOURCE, "the sparse triangular solve", FALLBACK)
    if path is None:
        return None
    try:
        function = ctypes.CDLL(str(path)).cnn_lower_solve
    except (OSError, AttributeError) as exc:   # e.g. a cache folder on a noexec mount
        log.warning("loading the sparse triangular solve failed (%s): using %s", exc, FALLBACK)
        return None
    pointer = ctypes.c_void_p
    function.argtypes = [ctypes.c_long, pointer, pointer, pointer, pointer, ctypes.c_long, ctypes.c_int, pointer,
                         ctypes.c_long, pointer]
    function.restype = ctypes.c_long
    return function


class InverseRows:
    """Rows of Y⁻¹u from a SuperLU factorisation of Y[order][:, order] with identity permutations."""

    def __init__(self, lu, order: np.ndarray, inverse: np.ndarray, kernel):
        lower = lu.L.tocsc()
        lower.sort_indices()
        upper_rows = lu.U.tocsr()   # U by rows: Uᵀ by columns, lower triangular
        upper_rows.sort_indices()
        self._l = _arrays(lower)
        self._ut = _arrays(upper_rows)
        self._n = lower.shape[0]
        self._order, self._inverse, self._kernel = order, inverse, kernel
        self._kept: tuple[bytes, sparse.csr_matrix] | None = None
        self._touched = np.empty(self._n, dtype=np.int64)   # the kernel's list of the rows it reached

    @classmethod
    def of(cls, lu, order: np.ndarray, inverse: np.ndarray) -> InverseRows | None:
        """For ``lu`` (a SuperLU object), or None where rows cannot be read apart (no C compiler; a
        pivot off the diagonal; factors too large for 32-bit indices)."""
        kernel = _kernel()
        if kernel is None or lu.nnz >= MAX_INDEX:
            return None
        identity = np.arange(lu.shape[0])
        if not (np.array_equal(lu.perm_r, identity) and np.array_equal(lu.perm_c, identity)):
            return None
        return cls(lu, order, inverse, kernel)

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """L⁻¹u (n × k) for the incidence vectors u = e_a − e_b (unknowns in the layer's own numbering):
        what ``rows`` reads."""
        z = np.empty((self._n, len(a)))
        for first in range(0, len(a), BLOCK):
            ends = (self._inverse[a[first:first + BLOCK]], self._inverse[b[first:first + BLOCK]])
            block = np.zeros((self._n, len(ends[0])))
            block[ends[0], np.arange(len(ends[0]))] = 1.0
            block[ends[1], np.arange(len(ends[0]))] = -1.0
            self._substitute(self._l, block, np.concatenate(ends), unit=True)
            z[:, first:first + BLOCK] = block
        return z

    def rows(self, rows: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(Y⁻¹u)[rows] (len(rows) × k) for ``z = forward(u)``. The operator of the last row set asked
        for is kept (a layer asks for its fixed rows at every read)."""
        rows = np.asarray(rows, dtype=np.int64)
        key = rows.tobytes()
        if self._kept is None or self._kept[0] != key:
            self._kept = (key, self.operator(rows))
        return np.asarray(self._kept[1] @ z)

    def operator(self, rows: np.ndarray) -> sparse.csr_matrix:
        """The rows gᵣᵀ (len(rows) × n, sparse): (Y⁻¹u)[rows] = operator @ forward(u)."""
        rows = np.asarray(rows, dtype=np.int64)
        where, unknowns, values = [], [], []
        for first in range(0, len(rows), BLOCK):
            chosen = self._inverse[rows[first:first + BLOCK]]
            unit = np.zeros((self._n, len(chosen)))
            unit[chosen, np.arange(len(chosen))] = 1.0
            touched = self._substitute(self._ut, unit, chosen, unit=False)   # a gᵣ reaches ~1000 unknowns
            reached = unit[touched]
            row, column = np.nonzero(reached)
            where.append(first + column)
            unknowns.append(touched[row])
            values.append(reached[row, column])
        if not where:
            return sparse.csr_matrix((0, self._n))
        return sparse.csr_matrix((np.concatenate(values), (np.concatenate(where), np.concatenate(unknowns))),
                                 shape=(len(rows), self._n))

    def _substitute(self, factor: tuple, x: np.ndarray, seeds: np.ndarray, unit: bool) -> np.ndarray:
        """x ← T⁻¹x in place (T: ``factor``; x zero but in the rows ``seeds``); returns the rows it
        reached (the others stay zero)."""
        indptr, indices, data = factor
        seeds = np.ascontiguousarray(seeds, dtype=np.int64)
        touched = self._touched
        count = self._kernel(self._n, indptr.ctypes.data, indices.ctypes.data, data.ctypes.data, x.ctypes.data,
                             x.shape[1], int(unit), seeds.ctypes.data, len(seeds), touched.ctypes.data)
        if count < 0:
            raise MemoryError("no memory for the triangular solve's row flags")
        return touched[:count].copy()


def _arrays(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(matrix.indptr, dtype=np.int32), np.ascontiguousarray(matrix.indices, dtype=np.int32),
            np.ascontiguousarray(matrix.data, dtype=np.float64))
