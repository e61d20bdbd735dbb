"""Populations of runs: plan files (configs x sparsities x seeds) and the resumable runner."""
