"""Periodic neighbour lists in pure torch (cell list / binning, O(N)).

For atoms i, j and an integer image n ∈ Z³ (zero along non-periodic axes) the pair vector is

    r_ij = x_j - x_i + s_ij,    s_ij = n @ cell    (Å, cell vectors as rows),

and every ordered triple (i, j, n) with |r_ij| < r_c is listed exactly once, except the atom
itself (i = j, n = 0). Periodic images of an atom (i = j, n ≠ 0) are listed when the cell is
shorter than r_c, as are several images of the same neighbour. Same convention as
``ase.neighborlist.neighbor_list('ijS', atoms, r_c)``.

Method: atoms are wrapped into the cell and binned in fractional coordinates; along axis a a
neighbour differs by at most r_c·|g_a| in fractional coordinate (g_a the reciprocal vector, so
1/|g_a| is the distance between lattice planes), which fixes how many bins (and images) to scan.
Only half of the bin offsets are scanned; each pair found at offset o ≠ 0 is mirrored.
Candidates are tested on the wrapped coordinates, kept pairs once more exactly on the caller's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from taafs_exp.data.errors import DataError

#: Bins per cutoff length (bins are r_c / k wide; k = 2 scans 5³ bins of (r_c/2)³).
BINS_PER_CUTOFF = 2
#: Below this many atoms ``method="auto"`` scans all pairs (one bin) instead of binning.
BRUTE_FORCE_MAX_ATOMS = 64
#: Candidate pairs examined per chunk (bounds memory: ~100 B per candidate).
CHUNK_CANDIDATES = 1 << 21
#: Relative slack on bin widths and image ranges against rounding (exact test is done last).
_SLACK = 1e-9


def cell_degeneracy(cell: Tensor, pbc: Tensor) -> Tensor:
    """V / Π|a_k| of the periodic lattice vectors (1 orthogonal, 0 singular), batched over
    leading dims of ``cell`` (..., 3, 3); V is the volume, area or length they span.
    1 when nothing is periodic."""
    periodic = cell.detach().to(torch.float64)[..., pbc, :]
    gram = torch.linalg.det(periodic @ periodic.transpose(-1, -2)).clamp(min=0.0).sqrt()
    norms = periodic.norm(dim=-1).prod(-1)
    return torch.where(norms > 0, gram / norms.clamp(min=1e-300), 0.0)


def complete_basis(cell: Tensor, pbc: Tensor) -> Tensor:
    """Return a non-singular (3, 3) basis: the periodic rows of ``cell``, with every
    non-periodic row replaced by an orthonormal complement of the periodic ones.

    Raises:
        DataError: the periodic lattice vectors are (nearly) linearly dependent,
            :func:`cell_degeneracy` < 1e-6.
    """
    cell = cell.detach().to(torch.float64)
    periodic = cell[pbc]
    k = periodic.shape[0]
    if float(cell_degeneracy(cell, pbc)) < 1e-6:
        raise DataError(
            f"cell: periodic lattice vectors {periodic.tolist()} are linearly dependent; "
            "expected a non-singular cell"
        )
    if k:
        complement = torch.linalg.svd(periodic, full_matrices=True).Vh[k:]
    else:
        complement = torch.eye(3, dtype=torch.float64, device=cell.device)
    basis = torch.empty_like(cell)
    basis[pbc] = periodic
    basis[~pbc] = complement
    return basis


def neighbor_list(
    positions: Tensor,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    *,
    method: str = "auto",
) -> tuple[Tensor, Tensor]:
    """All ordered pairs (i, j) and periodic images closer than ``cutoff``.

    Args:
        positions: (N, 3) Cartesian coordinates, Å; may require grad (indices are built
            without it, the caller recomputes r_ij = positions[j] - positions[i] + shifts).
        cutoff: r_c, Å; a pair is listed iff |r_ij| < r_c.
        cell: (3, 3) lattice vectors as rows, Å, or None (no periodicity). Rows along
            non-periodic axes are ignored (they may be zero).
        pbc: (3,) periodic axes; default all True with a cell, all False without.
        method: ``"cells"`` (binning, O(N)), ``"brute"`` (all pairs, O(N²)) or ``"auto"``
            (brute below :data:`BRUTE_FORCE_MAX_ATOMS` atoms).

    Returns:
        edge_index: (2, E) int64, rows (i, j), sorted by i then j.
        shifts: (E, 3) Cartesian image shifts n @ cell, dtype of ``positions`` (differentiable
            with respect to ``cell`` when it requires grad); zeros without a cell.

    Raises:
        DataError: non-finite positions, a singular periodic cell or a bad argument shape.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise DataError(f"positions: shape {tuple(positions.shape)}, expected (N, 3)")
    if not cutoff > 0:
        raise DataError(f"cutoff: {cutoff}, expected a positive number of Å")
    if method not in ("auto", "cells", "brute"):
        raise DataError(f"method: {method!r}, expected 'auto', 'cells' or 'brute'")
    device, dtype = positions.device, positions.dtype
    if pbc is None:
        pbc = torch.full((3,), cell is not None, dtype=torch.bool, device=device)
    pbc = torch.as_tensor(pbc, dtype=torch.bool, device=device)
    if cell is None:
        if bool(pbc.any()):
            raise DataError(f"pbc: {pbc.tolist()} without a cell, expected a (3, 3) cell")
        cell = torch.zeros(3, 3, dtype=dtype, device=device)
    if cell.shape != (3, 3) or pbc.shape != (3,):
        raise DataError(
            f"cell/pbc: shapes {tuple(cell.shape)}/{tuple(pbc.shape)}, expected (3, 3)/(3,)"
        )
    with torch.no_grad():
        pos = positions.detach().to(torch.float64)
        if not bool(torch.isfinite(pos).all()):
            raise DataError("positions: contain NaN or inf, expected finite coordinates")
        basis = complete_basis(cell, pbc)
        brute = method == "brute" or (method == "auto" and pos.shape[0] < BRUTE_FORCE_MAX_ATOMS)
        i, j, images = _search(pos, float(cutoff), basis, pbc, brute)
        order = torch.sort(i * max(pos.shape[0], 1) + j, stable=True).indices
        i, j, images = i[order], j[order], images[order]
    shifts = images.to(dtype) @ cell.to(dtype)
    return torch.stack([i, j]), shifts


def _search(
    pos: Tensor, cutoff: float, basis: Tensor, pbc: Tensor, brute: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Return (i, j, integer images n) of every pair with |x_j - x_i + n @ basis| < cutoff."""
    n_atoms, device = pos.shape[0], pos.device
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if n_atoms == 0:
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)
    recip = torch.linalg.inv(basis)  # frac = pos @ recip; column a is g_a
    frac = pos @ recip
    wrap = torch.where(pbc, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    wrapped = pos - wrap @ basis
    # Normalise non-periodic axes to [0, 1] over the occupied extent (≥ cutoff).
    low = torch.where(pbc, 0.0, frac.min(0).values)
    scale = torch.where(pbc, 1.0, (frac.max(0).values - low).clamp(min=cutoff))
    unit = (frac - low) / scale
    # x_a: largest |Δu_a| between neighbours; bins at least x_a / k wide.
    reach = (cutoff * recip.norm(dim=0) / scale).tolist()
    periodic = pbc.tolist()
    if brute:
        nbins = [1, 1, 1]
    else:
        nbins = [max(1, int(BINS_PER_CUTOFF / (x * (1 + 1e-8)))) for x in reach]
        excess = math.prod(nbins) / (2 * n_atoms + 8)
        if excess > 1:  # keep the bin count O(N) (tiny cutoffs, vacuum)
            nbins = [max(1, int(b / excess ** (1 / 3))) for b in nbins]
    span = [math.ceil(x * b * (1 + _SLACK)) for x, b in zip(reach, nbins)]
    span = [s if p else min(s, b - 1) for s, b, p in zip(span, nbins, periodic)]

    nb = torch.tensor(nbins, device=device)
    bins = torch.minimum((unit * nb).long().clamp(min=0), nb - 1)
    bin_id = (bins[:, 0] * nbins[1] + bins[:, 1]) * nbins[2] + bins[:, 2]
    order = torch.argsort(bin_id)
    counts = torch.bincount(bin_id, minlength=math.prod(nbins))
    starts = torch.cumsum(counts, 0) - counts

    # Half of the bin offsets: 0 first, then the lexicographically positive ones; a pair
    # found at offset o ≠ 0 also gives its mirror (j, i, -n), found at -o.
    ranges = [torch.arange(-s, s + 1, device=device) for s in span]
    offsets = torch.cartesian_prod(*ranges).reshape(-1, 3)
    offsets = offsets[offsets.shape[0] // 2 :]  # (K, 3), offsets[0] = 0
    target = bins[:, None, :] + offsets[None]  # (N, K, 3)
    image = torch.div(target, nb, rounding_mode="floor")
    valid = ((image == 0) | pbc).all(-1)
    target = target - image * nb
    target_id = (target[..., 0] * nbins[1] + target[..., 1]) * nbins[2] + target[..., 2]
    cand = counts[target_id] * valid  # candidates per (atom, offset)

    # One entry e per (atom, offset) with candidates: atom i_e, image n_e, the vector
    # n_e @ basis - x_i, and delta_e mapping candidate number k to its slot in ``order``.
    atom, slot = torch.nonzero(cand, as_tuple=True)
    cand = cand[atom, slot]
    image = image[atom, slot]
    origin = image.to(torch.float64) @ basis - wrapped.index_select(0, atom)
    ends = torch.cumsum(cand, 0)
    delta = starts[target_id[atom, slot]] - (ends - cand)
    entries, neighbours = [], []
    ones, lo = torch.ones(3, dtype=torch.float64, device=device), 0
    while lo < len(cand):  # chunks of about CHUNK_CANDIDATES candidates
        base = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(torch.searchsorted(ends, base + CHUNK_CANDIDATES, right=True)))
        top = int(ends[hi - 1])
        entry = torch.repeat_interleave(torch.arange(lo, hi, device=device), cand[lo:hi])
        k = torch.arange(base, top, device=device)
        j = order.index_select(0, k + delta.index_select(0, entry))
        d = wrapped.index_select(0, j) + origin.index_select(0, entry)
        inside = torch.nonzero((d * d) @ ones < (cutoff * (1 + _SLACK)) ** 2)[:, 0]
        entries.append(entry.index_select(0, inside))
        neighbours.append(j.index_select(0, inside))
        lo = hi
    e = torch.cat(entries) if entries else empty
    j = torch.cat(neighbours) if neighbours else empty
    i, img = atom.index_select(0, e), image.index_select(0, e)
    mirror = slot.index_select(0, e) > 0
    i, j, img = (
        torch.cat([i, j[mirror]]),
        torch.cat([j, i[mirror]]),
        torch.cat([img, -img[mirror]]),
    )
    # Back to the caller's (unwrapped) positions, then the exact test 0 < |r_ij| < cutoff
    # (and i != j or n != 0: distinct atoms may coincide).
    img = img + (wrap.index_select(0, i) - wrap.index_select(0, j)).long()
    r = pos.index_select(0, j) - pos.index_select(0, i) + img.to(torch.float64) @ basis
    dist = r.norm(dim=1)
    keep = (dist < cutoff) & ((i != j) | (img != 0).any(1))
    return i[keep], j[keep], img[keep]
