"""The shared backbone suite, one test class per entry of ``cases.MODEL_CASES``."""

from backbone_suite import BackboneSuite
from cases import MODEL_CASES

for _case in MODEL_CASES:
    _name = f"Test_{_case.name}"
    globals()[_name] = type(_name, (BackboneSuite,), {"case": _case})
