"""analogmed.plots"""
