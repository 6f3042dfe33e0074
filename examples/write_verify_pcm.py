"""Write-verify of the 9-3-1 network on a PCM chip: targets solved through the circuit, every device
tuned through its selection switch, then the drift of each cell from its programming to the end of
training and to one day later. Surrogate first (fast), then the same in ngspice.

Run: python examples/write_verify_pcm.py"""

import dataclasses

import numpy as np

from circuitnn import Crossbar, SpiceChip, SurrogateChip, circuit_conductances, load_config, train_default, tune_all

config = load_config(medium_name="PCM")
crossbar = Crossbar(config.crossbar_spec())
network = train_default(config.software_training())
targets = circuit_conductances(network.weights, crossbar, margin=config.onchip.target_margin)
as_found = np.random.default_rng(0).uniform(0, 1, crossbar.n_devices)

for chip_type in (SurrogateChip, SpiceChip):
    with chip_type(crossbar, as_found, config.programming, config.timing) as chip:
        tunings = tune_all(chip, targets, dataclasses.replace(config.tuning, initial_reset=False))
        totals = chip.ledger.totals()
        at_end = chip.conductances_S()
        chip.clock_s += 86400.0                         # a day on the shelf: drift, no operations
        a_day_later = chip.conductances_S()
    converged = sum(t.converged for t in tunings)
    print(f"{chip_type.__name__}: {converged}/30 devices within tolerance, {totals['pulses']} pulses, "
          f"{totals['time_s']:.3f} s, {totals['energy_total_J']:.3g} J; "
          f"after a day the conductances have drifted by {np.mean(a_day_later / at_end - 1):+.2%} on average")
