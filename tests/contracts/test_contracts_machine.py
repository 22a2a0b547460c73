"""Random call sequences over every native contract, checked against a model."""

from __future__ import annotations

from contracts_machine import ContractsMachine
from hypothesis import HealthCheck, settings

TestContractsMachine = ContractsMachine.TestCase
TestContractsMachine.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
