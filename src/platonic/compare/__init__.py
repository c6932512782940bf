"""Comparing representations: the metric functions, their registry, k-NN search and the fan-in over model pairs."""
