"""What the emulator raises."""


class SimulationError(RuntimeError):
    """The simulator itself failed or was asked for something it does not model."""


class BusError(RuntimeError):
    """An access to an address where nothing is mapped (a DECERR on the board)."""
