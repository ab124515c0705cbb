"""Periodic neighbour lists: vesin's C cell list on the CPU, a pure-torch one elsewhere.

For atoms i, j and an integer image n ∈ Z³ (zero along non-periodic axes) the pair vector is

    r_ij = x_j - x_i + s_ij,    s_ij = n @ cell    (Å, cell vectors as rows),

and every ordered triple (i, j, n) with |r_ij| < r_c is listed exactly once, except the atom
itself (i = j, n = 0). Periodic images of an atom (i = j, n ≠ 0) are listed when the cell is
shorter than r_c, as are several images of the same neighbour. Same convention as
``ase.neighborlist.neighbor_list('ijS', atoms, r_c)``.

Engines (``method``): ``"vesin"`` is the `vesin <https://github.com/Luthaf/vesin>`_ library
(float64, full list); on one thread ``neighbor_list(method="vesin")`` is 2-3× faster than
the torch search, of which vesin's own call is 0.4-0.65 of the time and our canonical sort
and shifts the rest (results/bench/neighbors.md). It handles full, partial (slabs, wires) and no periodicity and
cells shorter than r_c, so ``"auto"`` uses it for every CPU tensor. The hand-written torch
search (``"cells"``, ``"brute"``) is kept only for tensors on other devices (it runs there
without a host round trip; vesin's CUDA backend is not used or tested in this CPU project)
and as the independent reference the tests hold vesin to. Both engines return the same
triples in one canonical order, sorted by (i, j, n). (vesin tests |r|² < r_c², the torch
search |r| < r_c: they could differ only on a pair within rounding of r_c.)

Torch search: atoms are wrapped into the cell and binned in fractional coordinates; along axis
a a neighbour differs by at most r_c·|g_a| in fractional coordinate (g_a the reciprocal
vector, so 1/|g_a| is the distance between lattice planes), which fixes how many bins (and
images) to scan. Only half of the bin offsets are scanned; each pair found at offset o ≠ 0 is
mirrored. Candidates are tested on the wrapped coordinates, kept pairs once more exactly on
the caller's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import vesin
from torch import Tensor

from taafs_exp.data.errors import DataError

#: Bins per cutoff length (bins are r_c / k wide; k = 2 scans 5³ bins of (r_c/2)³).
BINS_PER_CUTOFF = 2
#: Engines ``neighbor_list`` accepts (see the module docstring).
METHODS = ("auto", "vesin", "cells", "brute")
#: Below this many atoms the torch search of ``method="auto"`` scans all pairs (one bin).
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
        method: ``"vesin"`` (vesin's cell list, on the CPU, with ``torch.get_num_threads()``
            threads), ``"cells"`` (torch binning, O(N)), ``"brute"`` (torch, all pairs, O(N²))
            or ``"auto"`` (vesin for CPU tensors; otherwise brute below
            :data:`BRUTE_FORCE_MAX_ATOMS` atoms, else cells).

    Returns:
        edge_index: (2, E) int64, rows (i, j), sorted by i, then j, then image n.
        shifts: (E, 3) Cartesian image shifts n @ cell, dtype of ``positions`` (differentiable
            with respect to ``cell`` when it requires grad); zeros without a cell.

    Raises:
        DataError: non-finite positions, a singular periodic cell or a bad argument shape.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise DataError(f"positions: shape {tuple(positions.shape)}, expected (N, 3)")
    if not cutoff > 0:
        raise DataError(f"cutoff: {cutoff}, expected a positive number of Å")
    if method not in METHODS:
        raise DataError(f"method: {method!r}, expected one of {METHODS}")
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
        if method == "auto":
            small = pos.shape[0] < BRUTE_FORCE_MAX_ATOMS
            method = "vesin" if device.type == "cpu" else "brute" if small else "cells"
        if method == "vesin":
            i, j, images = _vesin_search(pos, float(cutoff), basis, pbc)
        else:
            i, j, images = _search(pos, float(cutoff), basis, pbc, method == "brute")
    return _canonical(i, j, images, pos.shape[0], cell.to(dtype))


def _vesin_search(
    pos: Tensor, cutoff: float, basis: Tensor, pbc: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Return (i, j, integer images n) of every pair with |x_j - x_i + n @ basis| < cutoff,
    from vesin on the CPU (float64 ``pos`` and ``basis``, Å), on the device of ``pos``."""
    calculator = vesin.NeighborList(
        cutoff=cutoff, full_list=True, n_threads=torch.get_num_threads()
    )
    pairs, images = calculator.compute(
        pos.cpu().numpy(), basis.cpu().numpy(), pbc.cpu().numpy(), "PS", copy=False
    )
    pairs = torch.from_numpy(pairs.astype(np.int64)).to(pos.device)
    images = torch.from_numpy(images.astype(np.int64)).to(pos.device)
    return pairs[:, 0], pairs[:, 1], images


def _canonical(
    i: Tensor, j: Tensor, images: Tensor, n_atoms: int, cell: Tensor
) -> tuple[Tensor, Tensor]:
    """Sort the distinct triples (i, j, n) lexicographically, so that the order depends on
    neither the engine nor thread scheduling; return edge_index (2, E) and shifts n @ cell
    (E, 3), Å, dtype and autograd of ``cell``, looked up in a table of the images present."""
    if i.numel() == 0:
        return torch.stack([i, j]), torch.zeros(0, 3, dtype=cell.dtype, device=cell.device)
    low, high = torch.aminmax(images, dim=0)
    radix = (high - low + 1).tolist()
    n_images = math.prod(radix)
    offset = images - low
    image = (offset[:, 0] * radix[1] + offset[:, 1]) * radix[2] + offset[:, 2]
    if n_atoms**2 * n_images < 2**62:  # one int64 key (i, j, n), sorted without a gather
        key = torch.sort((i * n_atoms + j) * n_images + image).values
        pair, image = key.div(n_images, rounding_mode="floor"), key.remainder(n_images)
        edge_index = torch.empty(2, key.numel(), dtype=key.dtype, device=key.device)
        torch.div(pair, n_atoms, rounding_mode="floor", out=edge_index[0])
        torch.remainder(pair, n_atoms, out=edge_index[1])
    else:  # stable sorts, least significant first
        order = torch.arange(i.numel(), device=i.device)
        for column in (image, j, i):
            order = order[torch.sort(column[order], stable=True).indices]
        edge_index, image = torch.stack([i[order], j[order]]), image[order]
    ranges = [torch.arange(r, device=i.device) for r in radix]
    table = (torch.cartesian_prod(*ranges) + low).to(cell.dtype) @ cell
    return edge_index, table.index_select(0, image)


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
