"""Knowm's published Ag-chalcogenide fit: a *volatile* medium, to see what volatility does to write-verify.

The mean metastable-switch model (``msdc.py``) with the parameters Knowm fitted to a Boise State
Ag-chalcogenide device (the precursor of the W device), from a 0.25 V, 100 Hz sine (Nugent & Molter,
PLoS ONE 9(2) e85175, 2014, Fig. 8A; knowm/AHaH ``AgChalcMemristor.java``; reference notes
docs/reference/eslami2024-msdc.md §2.2): R_on ≈ 115 Ω (G_on 8.7 mS), R_off ≈ 1.1 kΩ (G_off 0.91 mS),
V_on 0.17 V, V_off 0.22 V, τ 0.32 ms, T 298 K.

With thresholds this low the unbiased device relaxes at k0 = (e^(−V_on/V_T) + e^(−V_off/V_T))/τ
≈ 4.8 /s toward x_eq ≈ 0.87: a programmed state is forgotten in ~0.2 s, faster than a 30-device
write-verify run takes. The preset claims exactly that (``Retention(volatile=True)``), and the
contract tests hold it to it.
"""

from __future__ import annotations

from .base import Retention
from .msdc import MsdcParams

AG_CHALCOGENIDE = MsdcParams(
    medium="AgChalc",
    r_on_ohm=1.0 / 8.7e-3, r_off_ohm=1.0 / 0.91e-3,
    v_on_V=0.17, v_off_V=0.22,
    tau_s=0.32e-3,
    temperature_K=298.0,
    # Knowm gives no current limit for this device; 10 mA keeps a 1 V pulse through the
    # programming path's 250 ohm (about 2.8 mA into R_on) well inside it.
    i_max_A=10e-3,
    provenance=("Knowm Ag-chalcogenide MSS fit (Nugent & Molter, PLoS ONE 2014, Fig. 8A; knowm/AHaH "
                "AgChalcMemristor.java): R_on 115 ohm, R_off 1.1 kohm, V_on 0.17 V, V_off 0.22 V, "
                "tau 0.32 ms, 298 K; volatile"),
    # Over 100 s an unbiased device reaches its equilibrium from either end: |dx| ~ 0.87 from x = 0.
    retention=Retention(duration_s=100.0, max_state_change=0.5, volatile=True),
)

PRESETS = (AG_CHALCOGENIDE,)
