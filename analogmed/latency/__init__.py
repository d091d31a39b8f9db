"""analogmed.latency"""
