"""Synthetic caseloads, movement, injected scenarios with ground truth, load tests."""
