"""Static model properties (size, parameters, sparsity, heads and FFN width per layer) of any variant."""
