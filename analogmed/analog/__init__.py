"""analogmed.analog"""
