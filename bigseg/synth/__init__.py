"""Synthetic electrodes and X-ray CT simulation with exact ground truth.

``electrode`` draws a three-phase cathode microstructure block by block, ``xct`` simulates its
reconstructed tomogram, ``perturb`` moves interfaces as the LRCS-Net paper's ground-truth
perturbation, and ``series`` makes an operando (t, z, y, x) series of evolving particles.
"""

from ._electrode import electrode
from ._perturb import perturb
from ._series import series
from ._xct import PRESETS, physics, xct

__all__ = ["electrode", "xct", "perturb", "series", "PRESETS", "physics"]
