"""Shared fixtures: a fresh simpy environment and a seeded generator per test."""
import numpy as np
import pytest
import simpy


@pytest.fixture
def env():
    return simpy.Environment()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
