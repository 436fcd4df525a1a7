"""The method: module masks, mask gradients, the search, selections, masked unlearning."""
