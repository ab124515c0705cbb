"""Backbones: each maps a flat batch to per-frame energies (eV), see :mod:`.base`.

One module per backbone (``dp``, ``ani2``, ``painn``, ``chgnet``), built by Hydra from
``conf/model/<name>.yaml``; submodules are imported on use, not here.
"""
