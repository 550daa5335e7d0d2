"""The frame of every contract suite (eventsourcing's per-backend test case): a suite's tests take `backend`,
which each concrete suite provides — the fake in `tests/unit`, the real adapter in `tests/integration`."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest


class ContractSuite:
    """A suite of behaviour every implementation of one port keeps; a concrete suite overrides `backend`."""

    @pytest.fixture
    def backend(self) -> Any:
        raise NotImplementedError("a concrete suite provides the backend fixture")


class SeededContractSuite(ContractSuite):
    """A contract suite whose tests may start from sample orders (`seeded`: the backend with `orders` stored)."""

    orders: ClassVar[list]

    @pytest.fixture
    async def seeded(self, backend) -> Any:
        await backend.seed(self.orders)
        return backend
