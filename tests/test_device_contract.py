"""Every registered device model passes the device-model contract on both chip backends."""

import pytest

from circuitnn.devices.base import presets
from device_contract import DeviceContract


@pytest.fixture(params=list(presets().values()), ids=list(presets()))
def model(request):
    return request.param


class TestEveryRegisteredModel(DeviceContract):
    pass


def test_at_least_three_model_families_are_registered():
    assert len({m.family for m in presets().values()}) >= 3
