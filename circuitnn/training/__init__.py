"""Trainers: how the network's target weights are found (software) and later written to a chip.

``software`` trains the bias-free sigmoid MLP the crossbar computes; ``mapping`` converts its weights
to device conductances and states in a ``Crossbar``'s site order, and programmed conductances back
to the weights the chip effectively holds.
"""
