"""The large-network path: MLP and CNN layers in NumPy, crossbar tiles built from the device models,
hardware-aware training and evaluation with device effects (M-SDC and PCM).

    net = build_network(NetworkConfig.mlp(), (28, 28), np.random.default_rng(0))
    train(net, X_train, y_train, NetworkTrainingConfig(weight_noise=0.1))
    evaluate(net, X_test, y_test, device="pcm", effects={"time_s": 30 * 86400})
"""

from .backprop_circuits import bp_gradients
from .chip_network import ChipNetwork, ChipTrace, EvaluationCounter
from .circuit_variation import CircuitVariation, LayerCircuits
from .devices import (
    MsdcEffects, MsdcTileDevice, PcmEffects, PcmTileDevice, TileDevice, TileReadout, tile_device,
)
from .layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU, softmax_cross_entropy
from .onchip_learning import LearningHistory, OnChipLearningConfig, learn
from .perturbation import dgc_gradient, parallel_gradient, spsa_gradients
from .tiles import AnalogMatrix, ProgrammedMatrix, TileConfig, program_weights, tile_slices
from .train import (
    NetworkConfig, NetworkTrainingConfig, TrainingHistory, accuracy, build_network, evaluate, tile_accuracy,
    train,
)

__all__ = [
    "ChipNetwork", "ChipTrace", "CircuitVariation", "EvaluationCounter", "LayerCircuits", "LearningHistory",
    "OnChipLearningConfig", "bp_gradients", "dgc_gradient", "learn", "parallel_gradient", "spsa_gradients",
    "AnalogMatrix", "AvgPool2D", "Conv2D", "Dense", "Flatten", "MaxPool2D", "MsdcEffects", "MsdcTileDevice",
    "Network", "NetworkConfig", "NetworkTrainingConfig", "PcmEffects", "PcmTileDevice", "ProgrammedMatrix",
    "ReLU", "TileConfig", "TileDevice", "TileReadout", "TrainingHistory", "accuracy", "build_network",
    "evaluate", "program_weights", "softmax_cross_entropy", "tile_accuracy", "tile_device", "tile_slices",
    "train",
]
