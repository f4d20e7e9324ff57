"""The decision pipeline: the steps in order, with no reference back to what built them."""
