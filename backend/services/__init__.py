"""The flows: the only layer that combines models with the outside world."""
