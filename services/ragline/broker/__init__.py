"""Message brokers behind one small interface (`Broker`), one adapter per broker."""

from ragline.broker.base import Broker, DeadLetter, Delivery

__all__ = ["Broker", "DeadLetter", "Delivery"]
