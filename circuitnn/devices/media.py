"""The M-SDC parameter sets for Knowm's tungsten (W), chromium (Cr) and carbon (C) media.

No fitted W/Cr/C values are public in our references (Garda et al., Energies 17, 5400, 2024 has them,
but its tables could not be read; docs/reference/eslami2024-msdc.md §2.4). These sets are therefore
*designed*, not fitted, to reflect what the vendor documents, and every number says why it is what it
is. Refit them to measurements with ``circuitnn fit``.

Rules every set obeys:
* Retention: zero-bias drift below 1 % of the state range over 100 s (a whole training run). The
  relaxation rate is about (exp(-V_on/V_T) + exp(-V_off/V_T))/tau, so thresholds sit at 0.50-0.65 V
  rather than the 0.27 V of Knowm's demo set (which forgets in ~2 s, §2.5 of the notes).
* Read safety: at a 0.1 V read the switching rate is ~exp(-(V_th - 0.1)/V_T)/tau < 1e-2 /s, so reads
  do not disturb the state.
* Current limit (Knowm FAQ): max 1 mA for W, 0.05 mA for C; at a 1 V SET pulse I <= V/R_on stays
  below i_max_A for each medium.
* T = 300 K: room temperature, as in Xyce's device default.

Each set claims the retention rule above (``Retention``: |Δx| ≤ 0.01 over 100 s at 0 V); the
contract tests hold it to that.
"""

from __future__ import annotations

from .msdc import MsdcParams

TUNGSTEN = MsdcParams(
    medium="W",
    # Analog state retention and incremental tuning (vendor): a low-resistance, low on/off-ratio
    # window (10x) and a slow tau, so one 10 us pulse moves x by ~2.5 % of the remaining range.
    r_on_ohm=2_000.0, r_off_ohm=20_000.0,
    v_on_V=0.50, v_off_V=0.50,
    tau_s=400e-6,
    temperature_K=300.0,
    i_max_A=1e-3,
    provenance=("designed (not fitted): W = analog/incremental, Knowm product page; 2 k/20 k window "
                "keeps a 1 V SET below the 1 mA datasheet limit (Knowm FAQ); tau 400 us for fine "
                "steps; 0.50 V thresholds for < 1 % drift in 100 s"),
)

CHROMIUM = MsdcParams(
    medium="Cr",
    # Between W and C: a 20x window and tau = 100 us, so a 10 us pulse moves x by ~10 % of the
    # remaining range; fewest write-verify pulses to a 5 % tolerance (the paper's best medium).
    r_on_ohm=5_000.0, r_off_ohm=100_000.0,
    v_on_V=0.55, v_off_V=0.50,
    tau_s=100e-6,
    temperature_K=300.0,
    i_max_A=0.5e-3,
    provenance=("designed (not fitted): Cr between W and C (Eslami et al. 2024: Cr trains fastest); "
                "5 k/100 k window, tau 100 us; thresholds 0.55/0.50 V for < 1 % drift in 100 s"),
)

CARBON = MsdcParams(
    medium="C",
    # Low-power binary switching (vendor): high resistance, a 100x window, and a transition time
    # (tau = 1 us) shorter than any practical programming pulse, so every pulse nearly completes
    # a transition: intermediate states are hard to reach, which is what "binary" means here.
    # Higher thresholds keep it non-volatile despite the fast tau.
    r_on_ohm=25_000.0, r_off_ohm=2_500_000.0,
    v_on_V=0.70, v_off_V=0.65,
    tau_s=1e-6,
    temperature_K=300.0,
    i_max_A=0.05e-3,
    provenance=("designed (not fitted): C = low-power binary switching, Knowm product page; R_on 25 k "
                "keeps a 1 V SET at 40 uA, below the 0.05 mA datasheet limit (Knowm FAQ); 100x window; "
                "tau 1 us (each pulse nearly completes a transition); thresholds 0.70/0.65 V"),
)

# The three media of Eslami et al. 2024, the study ``circuitnn reproduce`` repeats.
MEDIA: dict[str, MsdcParams] = {p.medium: p for p in (TUNGSTEN, CHROMIUM, CARBON)}
PRESET_ORDER = 0
PRESETS = tuple(MEDIA.values())
