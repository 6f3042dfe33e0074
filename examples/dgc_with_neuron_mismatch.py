"""Perturb-and-measure learning (DGC) on a chip whose neuron circuits are off-nominal.

A Monte-Carlo instance of the 9-3-1 circuit (op-amp offsets, resistor and gain tolerances drawn per
neuron) is programmed ex-situ by write-verify to targets mapped through the nominal circuit, then
fine-tuned by DGC: the gradient is measured through the mismatched circuit itself. On the
surrogate (fast); the same code runs on SpiceChip.

Run: python examples/dgc_with_neuron_mismatch.py"""

import dataclasses

import numpy as np

from circuitnn import Crossbar, SurrogateChip, load_config, make_task, train_with

config = load_config(medium_name="Cr", trainer_kind="dgc")
mismatch = dataclasses.replace(config.circuit.mismatch, feedback_sigma=0.10, offset_sigma_V=0.004, gain_sigma=0.10,
                               threshold_sigma_V=0.04, reference_sigma=0.04, instance=1)
config = dataclasses.replace(config, circuit=dataclasses.replace(config.circuit, mismatch=mismatch),
                             trainer=dataclasses.replace(config.trainer, settings={"steps": 30}))
crossbar = Crossbar(config.crossbar_spec())             # this chip's drawn neurons
task = make_task(config, crossbar)                       # targets from the nominal circuit
as_found = np.random.default_rng(0).uniform(0, 1, crossbar.n_devices)

with SurrogateChip(crossbar, as_found, config.programming, config.timing) as chip:
    result = train_with(config, chip, task, config.make_trainer(), "finetune", check_retention=False)
s = result.summary()
print(f"write-verify alone: {s['write_verify_all_inputs_accuracy']:.1%} over all binary inputs, "
      f"{s['write_verify_test_accuracy']:.1%} on the noisy test set ({s['write_verify_pulses']} pulses)")
print(f"after DGC fine-tuning: {s['all_inputs_accuracy']:.1%} over all binary inputs, "
      f"{s['chip_accuracy']:.1%} on the noisy test set ({s['evaluations']} chip evaluations, "
      f"{s['pulses'] - s['write_verify_pulses']} more pulses)")
